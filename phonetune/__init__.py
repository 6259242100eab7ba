"""phonetune: find, train and submit the best MLP for HW1P2 frame-level phoneme classification.

The work lives in three packages kept in the repository's top-level folders:
``phonetune.data_pipeline`` (files to batches), ``phonetune.model`` (network, budget, training, inference)
and ``phonetune.search`` (the Optuna study, workers, promotion, export and the CLI).
"""

from phonetune.errors import (
    BudgetError,
    CheckpointError,
    ConfigError,
    DataError,
    PhonetuneError,
    StorageError,
)

__version__ = "0.1.0"

__all__ = [
    "BudgetError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "PhonetuneError",
    "StorageError",
]
