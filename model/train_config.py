"""``TrainConfig`` (the ``[train]`` table) and ``RunConfig`` (data + model + train), loaded from a run TOML.

A run TOML has exactly three tables, ``[data]``, ``[model]`` and ``[train]``. The data owns the network's input and
output sizes (``[data] context_frames``, ``feature_width`` and the phoneme list); ``RunConfig.io`` derives them, so
the context window is set in one place only.

Example::

    run = load_run_config("studies/starter.toml", ["train.epochs=3", "data.root=data/demo"])
    run.io.input_dim == (2 * run.data.context_frames + 1) * run.data.feature_width  # always
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from phonetune.atomic import atomic_write_text
from phonetune.configs import apply_overrides, collect_problems, raise_problems, read_toml, to_mapping
from phonetune.data_pipeline.config import DataConfig
from phonetune.errors import ConfigError
from phonetune.model.config import ModelConfig, ModelIO

Optimizer = Literal["adamw", "adam", "sgd", "sgd_nesterov", "rmsprop"]
Scheduler = Literal["fixed", "step", "plateau", "exponential", "cosine", "onecycle", "linear"]
# The schedules that can end at a run's horizon (``model.optim.HorizonSchedule``), as every run ``phonetune run``
# trains does.
HORIZON_SHAPES = ("linear", "cosine", "onecycle")

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
RUN_SECTIONS = ("data", "model", "train")
# Older run files set these in [model]; they belong to the data now, and the message says so.
DATA_OWNED_KEYS = frozenset({"context_frames", "feature_width", "num_classes"})


@dataclass
class TrainConfig:
    """How one model is trained: epochs, batches, optimizer, schedule, regularisation, device."""

    epochs: int = 10  # passes over the (possibly subsampled) training split (replaced by total_steps when set)
    total_steps: int = 0  # the run's length in optimizer steps, ending mid-epoch if need be; 0 = epochs x batches
    batch_size: int = 2048  # frames per optimizer step; larger is faster per frame on a GPU, noisier is smaller
    eval_batch_size: int = 16384  # frames per forward pass when evaluating or predicting; memory only
    optimizer: Optimizer = "adamw"  # adamw decouples weight decay; sgd/sgd_nesterov/rmsprop use momentum
    lr: float = 1e-3  # peak learning rate (the max of a one-cycle schedule)
    weight_decay: float = 0.0  # L2 (adam, sgd, rmsprop) or decoupled (adamw) decay of weight matrices
    momentum: float = 0.9  # for sgd, sgd_nesterov and rmsprop; ignored by adam/adamw
    scheduler: Scheduler = "fixed"  # fixed lr, step/plateau/exponential/cosine per epoch, onecycle/linear per batch
    step_size: int = 2  # step: epochs between lr drops
    gamma: float = 0.5  # step and exponential: lr multiplier per drop / per epoch
    plateau_patience: int = 1  # plateau: epochs without dev-loss improvement before the lr drops
    plateau_factor: float = 0.5  # plateau: lr multiplier on a drop
    warmup_fraction: float = 0.1  # onecycle, linear: fraction of all steps spent warming up to lr
    warmup_steps: int = 0  # linear: warm-up steps, overriding warmup_fraction (so a run can be lengthened later)
    hold_steps: int = 0  # linear: steps at the full lr after the warm-up, then linear decay to 0 at the last step
    pause_at_step: int = 0  # stop this session after this many steps (0 = run to the end); a later one continues
    eval_every_steps: int = 0  # also evaluate (and checkpoint) every this many steps; 0 = at epoch ends only
    ema_decay: float = 0.0  # evaluate and predict with an exponential moving average of the weights; 0 = off
    label_smoothing: float = 0.0  # cross-entropy target smoothing, 0..<1; dev loss is always unsmoothed
    rdrop_alpha: float = 0.0  # R-Drop: two dropout passes per batch, plus alpha x their symmetric KL; 0 = off
    grad_clip: float = 0.0  # max global gradient norm; 0 turns clipping off
    seed: int = 0  # model init, dropout and the per-epoch shuffle all derive from this
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    bf16: bool = True  # bfloat16 autocast where native: CUDA, CPUs with AVX512-BF16/AMX; float32 elsewhere
    compile: bool = False  # torch.compile the model: faster steps on CUDA after a one-off compile

    def problems(self) -> list[str]:
        found = []
        for name in ("epochs", "batch_size", "eval_batch_size", "step_size"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be at least 1, but got {name}={getattr(self, name)}")
        for name in ("total_steps", "warmup_steps", "hold_steps", "pause_at_step", "eval_every_steps"):
            if getattr(self, name) < 0:
                found.append(f"{name} must be 0 (off) or more, but got {name}={getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            found.append(f"ema_decay must be in [0, 1) (0 = off), but got ema_decay={self.ema_decay}")
        if self.hold_steps and self.scheduler != "linear":
            found.append(f"hold_steps applies to scheduler = \"linear\" only, but the scheduler is {self.scheduler!r}")
        if self.batch_size < 2:
            found.append(f"batch_size must be at least 2 (batch norm needs two frames), but got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            found.append(f"lr must be a positive number, but got lr={self.lr}")
        if self.weight_decay < 0:
            found.append(f"weight_decay must be 0 or more, but got weight_decay={self.weight_decay}")
        if not 0.0 <= self.momentum < 1.0:
            found.append(f"momentum must be in [0, 1), but got momentum={self.momentum}")
        if self.optimizer == "sgd_nesterov" and self.momentum == 0:
            found.append("momentum must be above 0 for sgd_nesterov, but got momentum=0")
        if not 0.0 < self.gamma <= 1.0:
            found.append(f"gamma must be in (0, 1], but got gamma={self.gamma}")
        if self.plateau_patience < 0:
            found.append(f"plateau_patience must be 0 or more, but got plateau_patience={self.plateau_patience}")
        if not 0.0 < self.plateau_factor < 1.0:
            found.append(f"plateau_factor must be in (0, 1), but got plateau_factor={self.plateau_factor}")
        if not 0.0 < self.warmup_fraction < 1.0:
            found.append(f"warmup_fraction must be in (0, 1), but got warmup_fraction={self.warmup_fraction}")
        if not 0.0 <= self.label_smoothing < 1.0:
            found.append(f"label_smoothing must be in [0, 1), but got label_smoothing={self.label_smoothing}")
        if not (0.0 <= self.rdrop_alpha and math.isfinite(self.rdrop_alpha)):
            found.append(f"rdrop_alpha must be 0 (off) or a positive number, but got rdrop_alpha={self.rdrop_alpha}")
        if self.grad_clip < 0:
            found.append(f"grad_clip must be 0 (off) or more, but got grad_clip={self.grad_clip}")
        if not _DEVICE_PATTERN.match(self.device):
            found.append(f"device must be auto, cpu, cuda or cuda:N, but got device={self.device!r}")
        return found


@dataclass
class RunConfig:
    """Everything one training run needs; the network's input and output sizes come from ``data`` (``io``)."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    @property
    def io(self) -> ModelIO:
        """The model's input width (the data's context window) and output width (the data's phoneme count)."""
        return ModelIO.of(self.data)

    def to_mapping(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (``{"data": ..., "model": ..., "train": ...}``) for TOML, JSON and checkpoints."""
        return {name: to_mapping(getattr(self, name)) for name in RUN_SECTIONS}


def run_config_from_mapping(mapping: Mapping[str, Any], source: str) -> RunConfig:
    """Build a RunConfig from a nested mapping; every problem names ``source`` and the table it is in."""
    problems = []
    for section in mapping:
        if section not in RUN_SECTIONS:
            problems.append(f"{source}: unknown table [{section}]; a run config has only [data], [model], [train]")
    for section in RUN_SECTIONS:
        if section in mapping and not isinstance(mapping[section], Mapping):
            problems.append(f"{source}: {section} must be a table, but got {mapping[section]!r}")
    model_table = mapping.get("model")
    if isinstance(model_table, Mapping):
        for key in sorted(set(model_table) & DATA_OWNED_KEYS):
            problems.append(f"{source} [model]: {key} is set by the data; set it in [data] (the model's input and "
                            "output widths derive from [data] context_frames, feature_width and phonemes)")
    raise_problems(problems)
    data = collect_problems(DataConfig, mapping.get("data"), f"{source} [data]", problems)
    model = collect_problems(ModelConfig, model_table, f"{source} [model]", problems)
    train = collect_problems(TrainConfig, mapping.get("train"), f"{source} [train]", problems)
    raise_problems(problems)
    return RunConfig(data=data, model=model, train=train)


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a run TOML, apply ``section.key=value`` overrides, and validate the result."""
    mapping = apply_overrides(read_toml(path), list(overrides or []))
    source = str(path) if not overrides else f"{path} (with --set {' '.join(overrides)})"
    return run_config_from_mapping(mapping, source)


def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # A JSON string (non-ASCII kept as is) is a valid TOML basic string: same quotes and escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item, where) for item in value) + "]"
    raise ConfigError(f"{where} must be a bool, number, string or list to be written as TOML, but got {value!r}")


def run_config_toml(run_config: RunConfig, header: str = "") -> str:
    """The resolved run config as TOML text (a tiny writer: three flat tables of scalars and string lists)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for section, table in run_config.to_mapping().items():
        if lines:
            lines.append("")
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value, f'[{section}] {key}')}" for key, value in table.items())
    return "\n".join(lines) + "\n"


def write_run_config(path: str | Path, run_config: RunConfig, header: str = "") -> Path:
    """Write the resolved config atomically; ``load_run_config`` reads it back to an equal RunConfig."""
    return atomic_write_text(path, run_config_toml(run_config, header))
