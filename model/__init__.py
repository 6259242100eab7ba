"""The MLP family, the 20M parameter budget, the trainer, checkpoints, inference and scoring."""

from phonetune.model.budget import (
    DEFAULT_PARAM_BUDGET,
    MAX_BASE_WIDTH,
    check_ensemble_budget,
    check_members_fit,
    check_param_budget,
    count_params,
    ensure_fits,
    layer_widths,
    max_base_width,
)
from phonetune.model.config import ModelConfig
from phonetune.model.checkpoint import CHECKPOINT_FORMAT
from phonetune.model.ensemble import (
    EnsembleSelection,
    ensemble_probabilities,
    select_ensemble,
    write_ensemble_submission,
)
from phonetune.model.inference import (
    load_checkpoint,
    load_checkpoint_split,
    predict_checkpoint,
    predict_probabilities,
    predict_split,
    write_submission,
)
from phonetune.model.network import PhonemeMLP, build_model
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
from phonetune.model.trainer import Trainer

__all__ = [
    "CHECKPOINT_FORMAT",
    "DEFAULT_PARAM_BUDGET",
    "EnsembleSelection",
    "EpochMetrics",
    "MAX_BASE_WIDTH",
    "ModelConfig",
    "PhonemeMLP",
    "RunConfig",
    "ScoreReport",
    "SubmissionError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_model",
    "check_ensemble_budget",
    "check_members_fit",
    "check_param_budget",
    "count_params",
    "ensemble_probabilities",
    "ensure_fits",
    "layer_widths",
    "load_checkpoint",
    "load_checkpoint_split",
    "load_run_config",
    "max_base_width",
    "predict_checkpoint",
    "predict_probabilities",
    "predict_split",
    "run_config_from_mapping",
    "run_config_toml",
    "score_submission",
    "select_ensemble",
    "write_ensemble_submission",
    "write_run_config",
    "write_score_report",
    "write_submission",
]
