"""``TrainConfig`` (the ``[train]`` table) and ``RunConfig`` (data + model + train), loaded from a run TOML.

A run TOML has exactly three tables, ``[data]``, ``[model]`` and ``[train]``. The data owns the input and output
sizes: ``[data] context_frames``, ``feature_width`` and the phoneme list are copied into the model config, so
context is set in one place; a ``[model]`` value that disagrees with them is a ConfigError.

Example::

    run = load_run_config("studies/starter.toml", ["train.epochs=3", "data.root=data/demo"])
    run.model.context_frames == run.data.context_frames  # always
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from phonetune.atomic import atomic_write_text
from phonetune.configs import apply_overrides, from_mapping, read_toml, to_mapping
from phonetune.data_pipeline import DataConfig
from phonetune.errors import ConfigError
from phonetune.model.config import ModelConfig

Optimizer = Literal["adamw", "adam", "sgd", "sgd_nesterov", "rmsprop"]
Scheduler = Literal["fixed", "step", "plateau", "exponential", "cosine", "onecycle"]

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
RUN_SECTIONS = ("data", "model", "train")
# [model] keys whose value comes from [data]; the message says where to set them instead.
_DATA_OWNED = {
    "context_frames": ("context_frames", lambda data: data.context_frames),
    "feature_width": ("feature_width", lambda data: data.feature_width),
    "num_classes": ("phonemes (its length)", lambda data: len(data.phonemes)),
}


@dataclass
class TrainConfig:
    """How one model is trained: epochs, batches, optimizer, schedule, regularisation, device."""

    epochs: int = 10  # passes over the (possibly subsampled) training split
    batch_size: int = 2048  # frames per optimizer step; larger is faster per frame on a GPU, noisier is smaller
    eval_batch_size: int = 16384  # frames per forward pass when evaluating or predicting; memory only
    optimizer: Optimizer = "adamw"  # adamw decouples weight decay; sgd/sgd_nesterov/rmsprop use momentum
    lr: float = 1e-3  # peak learning rate (the max of a one-cycle schedule)
    weight_decay: float = 0.0  # L2 (adam, sgd, rmsprop) or decoupled (adamw) decay of weight matrices
    momentum: float = 0.9  # for sgd, sgd_nesterov and rmsprop; ignored by adam/adamw
    scheduler: Scheduler = "fixed"  # fixed lr, or step/plateau/exponential/cosine per epoch, onecycle per batch
    step_size: int = 2  # step: epochs between lr drops
    gamma: float = 0.5  # step and exponential: lr multiplier per drop / per epoch
    plateau_patience: int = 1  # plateau: epochs without dev-loss improvement before the lr drops
    plateau_factor: float = 0.5  # plateau: lr multiplier on a drop
    warmup_fraction: float = 0.1  # onecycle: fraction of all steps spent warming up to lr
    label_smoothing: float = 0.0  # cross-entropy target smoothing, 0..<1; dev loss is always unsmoothed
    grad_clip: float = 0.0  # max global gradient norm; 0 turns clipping off
    seed: int = 0  # model init, dropout and the per-epoch shuffle all derive from this
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    bf16: bool = True  # bfloat16 autocast on CUDA (ignored on CPU, which stays float32 and bitwise reproducible)
    compile: bool = False  # torch.compile the model: faster steps on CUDA after a one-off compile

    def problems(self) -> list[str]:
        found = []
        for name in ("epochs", "batch_size", "eval_batch_size", "step_size"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be at least 1, but got {name}={getattr(self, name)}")
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
        if self.grad_clip < 0:
            found.append(f"grad_clip must be 0 (off) or more, but got grad_clip={self.grad_clip}")
        if not _DEVICE_PATTERN.match(self.device):
            found.append(f"device must be auto, cpu, cuda or cuda:N, but got device={self.device!r}")
        return found


@dataclass
class RunConfig:
    """Everything one training run needs; ``model``'s input/output sizes always equal ``data``'s."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    @classmethod
    def from_parts(cls, data: DataConfig, model: ModelConfig, train: TrainConfig) -> "RunConfig":
        """Combine the three configs, copying context, feature width and class count from ``data`` into ``model``."""
        model = dataclasses.replace(
            model,
            context_frames=data.context_frames,
            feature_width=data.feature_width,
            num_classes=len(data.phonemes),
        )
        return cls(data=data, model=model, train=train)

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
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))
    data = from_mapping(DataConfig, mapping.get("data"), f"{source} [data]")
    model_table = dict(mapping.get("model") or {})
    for key, (data_key, value_of) in _DATA_OWNED.items():
        expected = value_of(data)
        if key in model_table and model_table[key] != expected:
            raise ConfigError(
                f"{source}: [model] {key} must equal the data's {data_key} ({expected}), but got "
                f"{key}={model_table[key]!r}; set it in [data] only"
            )
        model_table[key] = expected
    model = from_mapping(ModelConfig, model_table, f"{source} [model]")
    train = from_mapping(TrainConfig, mapping.get("train"), f"{source} [train]")
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
