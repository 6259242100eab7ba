"""The MLP family, the 20M parameter budget, the trainer, checkpoints, inference and scoring."""

from phonetune.model.budget import (
    DEFAULT_PARAM_BUDGET,
    MAX_BASE_WIDTH,
    check_ensemble_budget,
    check_param_budget,
    count_params,
    ensure_fits,
    layer_widths,
    max_base_width,
)
from phonetune.model.config import ModelConfig
from phonetune.model.network import PhonemeMLP, build_model
from phonetune.model.train_config import (
    RunConfig,
    TrainConfig,
    load_run_config,
    run_config_from_mapping,
    run_config_toml,
    write_run_config,
)

__all__ = [
    "DEFAULT_PARAM_BUDGET",
    "MAX_BASE_WIDTH",
    "ModelConfig",
    "PhonemeMLP",
    "RunConfig",
    "TrainConfig",
    "build_model",
    "check_ensemble_budget",
    "check_param_budget",
    "count_params",
    "ensure_fits",
    "layer_widths",
    "load_run_config",
    "max_base_width",
    "run_config_from_mapping",
    "run_config_toml",
    "write_run_config",
]
