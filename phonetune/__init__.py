"""phonetune: find, train and submit the best MLP for HW1P2 frame-level phoneme classification.

The work lives in packages by role: ``phonetune.data_pipeline`` (files to batches), ``phonetune.model`` (network,
parameter counts, training, inference) and ``phonetune.search`` (the study engine: space, storage, trials, workers, promotion,
retrain), kept in the repository's top-level folders; and ``phonetune.job`` (``phonetune run`` under one budget),
``phonetune.results`` (ablation sheet, report, dashboard) and ``phonetune.cli`` (the ``phonetune`` command), folders
of this package. This top level holds what all of them share: the errors, typed config loading, atomic writes.
"""

from phonetune.errors import (
    BudgetError,
    CheckpointError,
    ConfigError,
    DataError,
    ParamLimitError,
    PhonetuneError,
    StorageError,
)

__version__ = "0.1.0"

__all__ = [
    "BudgetError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ParamLimitError",
    "PhonetuneError",
    "StorageError",
]
