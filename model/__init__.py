"""The MLP family, the 20M parameter limit, the trainer, checkpoints, inference and scoring.

This top level holds what needs no torch: the configs, the parameter arithmetic and the run files, so the search and
the CLI import them in milliseconds. What makes tensors is imported from its module: ``model.network``
(``PhonemeMLP``, ``build_model``), ``model.trainer`` (``Trainer``), ``model.inference`` (``load_checkpoint``,
``predict_checkpoint``), ``model.checkpoint``.
"""

from phonetune.model.params import (
    DEFAULT_PARAM_LIMIT,
    MAX_BASE_WIDTH,
    check_ensemble_limit,
    check_members_fit,
    check_param_limit,
    count_params,
    ensure_fits,
    layer_widths,
    max_base_width,
)
from phonetune.model.config import ModelConfig, ModelIO
from phonetune.model.run_files import EpochMetrics, TrainResult
from phonetune.model.scoring import ScoreReport, SubmissionError, score_submission, write_score_report
from phonetune.model.train_config import (
    RunConfig,
    TrainConfig,
    load_run_config,
    run_config_from_mapping,
    run_config_toml,
    write_run_config,
)

__all__ = [
    "DEFAULT_PARAM_LIMIT",
    "EpochMetrics",
    "MAX_BASE_WIDTH",
    "ModelConfig",
    "ModelIO",
    "RunConfig",
    "ScoreReport",
    "SubmissionError",
    "TrainConfig",
    "TrainResult",
    "check_ensemble_limit",
    "check_members_fit",
    "check_param_limit",
    "count_params",
    "ensure_fits",
    "layer_widths",
    "load_run_config",
    "max_base_width",
    "run_config_from_mapping",
    "run_config_toml",
    "score_submission",
    "write_run_config",
    "write_score_report",
]
