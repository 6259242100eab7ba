"""The ``[space]`` table of a study: for each hyperparameter, a range, a list of choices, or one fixed value.

Every searchable hyperparameter is listed once in ``HYPERPARAMETERS`` with its kind (int range, float range or
choice), the run-config field it sets (``section.field``) and the limits the model and data accept. A study's TOML
writes each one in whichever form fits::

    [space]
    hidden_layers = 3                                  # fixed: never sampled
    activation = ["relu", "gelu"]                      # choices
    [space.lr]                                         # a range
    low = 1e-4
    high = 1e-2
    log = true
    [space.batch_size]
    choices = [512, 1024, 2048]

``base_width`` is special: its range is the *requested* range, and each trial samples ``width_fraction`` in [0, 1],
mapped on a log scale into ``[low, min(high, largest width that fits the parameter limit)]`` (see ``space.py``).
``weight_decay`` and other log ranges may set ``zero = true`` to also try exactly 0, sampled as a separate on/off
switch (a log scale cannot hold 0).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from phonetune.data_pipeline.config import MAX_CONTEXT_FRAMES, DataConfig
from phonetune.model.config import ModelConfig
from phonetune.model.train_config import TrainConfig

ParamKind = Literal["int", "float", "choice"]


@dataclass
class IntRange:
    """An integer hyperparameter: sampled in [low, high] (inclusive), or fixed to ``value``."""

    low: int | None = None  # smallest value tried
    high: int | None = None  # largest value tried
    log: bool = False  # sample on a log scale (widths); needs low >= 1
    step: int = 1  # spacing between tried values (ignored with log)
    value: int | None = None  # fixed value: when set, nothing is sampled and low/high must be unset

    def is_fixed(self) -> bool:
        return self.value is not None or (self.low is not None and self.low == self.high)

    def fixed_value(self) -> int:
        return int(self.value if self.value is not None else self.low)  # type: ignore[arg-type]

    def bounds(self) -> tuple[int, int]:
        """(smallest, largest) value this spec can produce."""
        if self.is_fixed():
            return self.fixed_value(), self.fixed_value()
        return int(self.low), int(self.high)  # type: ignore[arg-type]


@dataclass
class FloatRange:
    """A real hyperparameter: sampled in [low, high], optionally also exactly 0, or fixed to ``value``."""

    low: float | None = None  # smallest value tried
    high: float | None = None  # largest value tried
    log: bool = False  # sample on a log scale (learning rates, weight decay); needs low > 0
    zero: bool = False  # also try exactly 0, chosen by a separate on/off parameter "<name>_on"
    value: float | None = None  # fixed value: when set, nothing is sampled and low/high must be unset

    def is_fixed(self) -> bool:
        return self.value is not None or (self.low is not None and self.low == self.high and not self.zero)

    def fixed_value(self) -> float:
        return float(self.value if self.value is not None else self.low)  # type: ignore[arg-type]

    def bounds(self) -> tuple[float, float]:
        if self.is_fixed():
            return self.fixed_value(), self.fixed_value()
        return (0.0 if self.zero else float(self.low)), float(self.high)  # type: ignore[arg-type]


@dataclass
class Choice:
    """A categorical hyperparameter: one of ``choices``, or fixed to ``value``."""

    choices: list[Any] = field(default_factory=list)  # values tried (strings, integers or booleans)
    value: Any = None  # fixed value: when set, nothing is sampled and choices must be empty

    def is_fixed(self) -> bool:
        return self.value is not None or len(self.choices) == 1

    def fixed_value(self) -> Any:
        return self.value if self.value is not None else self.choices[0]

    def options(self) -> list[Any]:
        return [self.fixed_value()] if self.is_fixed() else list(self.choices)


ParamSpec = IntRange | FloatRange | Choice
SPEC_TYPES: dict[str, type] = {"int": IntRange, "float": FloatRange, "choice": Choice}


@dataclass(frozen=True)
class Hyperparameter:
    """What a ``[space]`` key controls and which values are legal for it at all."""

    kind: ParamKind
    target: str  # the run-config field it sets, as "section.field"
    minimum: float | None = None  # smallest legal value (inclusive)
    maximum: float | None = None  # largest legal value (inclusive)
    help: str = ""

    @property
    def section(self) -> str:
        return self.target.split(".")[0]

    @property
    def field(self) -> str:
        return self.target.split(".")[1]


# Optimizers whose update uses momentum; `momentum` is drawn only when one of these is chosen.
MOMENTUM_OPTIMIZERS = frozenset({"sgd", "sgd_nesterov", "rmsprop"})


# Every searchable hyperparameter, in sampling order. context_frames sets the data windows; the model's input width
# is derived from it (``RunConfig.io``).
HYPERPARAMETERS: dict[str, Hyperparameter] = {
    "hidden_layers": Hyperparameter("int", "model.hidden_layers", 0, 8, "hidden Linear blocks; 0 = starter model"),
    "base_width": Hyperparameter("int", "model.base_width", 8, 65_536, "requested width range; the parameter limit caps it"),
    "width_shape": Hyperparameter("choice", "model.width_shape", help="cylinder/pyramid/inverse_pyramid/diamond"),
    "activation": Hyperparameter("choice", "model.activation"),
    "batchnorm": Hyperparameter("choice", "model.batchnorm", help="BatchNorm before/after the activation, none"),
    "batchnorm_layers": Hyperparameter("choice", "model.batchnorm_layers", help="every or alternate layer"),
    "dropout": Hyperparameter("float", "model.dropout", 0.0, 0.5),
    "dropout_layers": Hyperparameter("choice", "model.dropout_layers", help="every or alternate layer"),
    "init": Hyperparameter("choice", "model.init"),
    "context_frames": Hyperparameter("int", "data.context_frames", 0, MAX_CONTEXT_FRAMES),
    "optimizer": Hyperparameter("choice", "train.optimizer"),
    "momentum": Hyperparameter("float", "train.momentum", 0.0, 0.999, "only drawn for SGD-style optimizers"),
    "lr": Hyperparameter("float", "train.lr", 1e-7, 10.0),
    "weight_decay": Hyperparameter("float", "train.weight_decay", 0.0, 1.0),
    "batch_size": Hyperparameter("choice", "train.batch_size"),
    "scheduler": Hyperparameter("choice", "train.scheduler"),
    "label_smoothing": Hyperparameter("float", "train.label_smoothing", 0.0, 0.5),
    "rdrop_alpha": Hyperparameter("float", "train.rdrop_alpha", 0.0, 10.0, "R-Drop weight; 0 = off"),
    "time_mask_prob": Hyperparameter("float", "data.time_mask_prob", 0.0, 1.0),
    "time_mask_max_frames": Hyperparameter("int", "data.time_mask_max_frames", 0, 101),
    "freq_mask_prob": Hyperparameter("float", "data.freq_mask_prob", 0.0, 1.0),
    "freq_mask_max_bands": Hyperparameter("int", "data.freq_mask_max_bands", 0, 28),
}


# Integer hyperparameters (their axes show whole numbers).
INTEGER_PARAMS = frozenset(name for name, hyper in HYPERPARAMETERS.items() if hyper.kind == "int")


def log_scale_params(space: Mapping[str, "ParamSpec"]) -> frozenset[str]:
    """The hyperparameters ``space`` (a study's ``[space]``) samples on a log scale (``log = true``): their axes are
    logarithmic too."""
    return frozenset(name for name, spec in space.items() if not isinstance(spec, Choice) and spec.log)


# What a model without hidden layers ignores: it is the single output Linear, with no width, shape, activation,
# batch norm or dropout. (Its init still applies to that layer.)
_UNUSED_WITHOUT_HIDDEN_LAYERS = frozenset({"base_width", "width_fraction", "width_shape", "activation", "batchnorm",
                                           "batchnorm_layers", "dropout", "dropout_layers"})


def unused_params(values: Mapping[str, Any]) -> set[str]:
    """The names among ``values`` (a trial's params and base_width) that the model they build ignores.

    The one statement of which hyperparameter depends on which: the space draws a hyperparameter only when it
    applies (``applies``), and the sheet blanks one an older study drew anyway.
    """
    unused: set[str] = set()
    depth = values.get("hidden_layers")
    if depth == 0:
        unused |= _UNUSED_WITHOUT_HIDDEN_LAYERS
    elif depth == 1:
        unused.add("width_shape")  # one layer has one width: the space draws none (a cylinder)
    if values.get("batchnorm") == "none":
        unused.add("batchnorm_layers")
    if values.get("dropout") == 0:
        unused.add("dropout_layers")
    if values.get("time_mask_prob") == 0:
        unused.add("time_mask_max_frames")
    if values.get("freq_mask_prob") == 0:
        unused.add("freq_mask_max_bands")
    if values.get("weight_decay_on") is False:
        unused.add("weight_decay")
    if "optimizer" in values and values["optimizer"] not in MOMENTUM_OPTIMIZERS:
        unused.add("momentum")
    return unused & set(values)


def applies(name: str, drawn: Mapping[str, Any]) -> bool:
    """Whether hyperparameter ``name`` changes the model or its training, given the values ``drawn`` before it
    (``HYPERPARAMETERS`` order puts every condition before what it decides)."""
    return name not in unused_params({**drawn, name: None})


def parse_param(name: str, raw: Any) -> tuple[dict[str, Any], str | None]:
    """Turn a ``[space]`` entry in any of its three forms into a spec table; returns (table, problem or None).

    A table passes through; a list means choices (for a range hyperparameter it is a problem); a scalar is fixed.
    """
    hyper = HYPERPARAMETERS[name]
    if isinstance(raw, dict):
        return dict(raw), None
    if isinstance(raw, list):
        if hyper.kind != "choice":
            return {}, f"{name} is a {hyper.kind} range: write a table with low/high or one fixed value, not a list"
        return {"choices": raw}, None
    return {"value": raw}, None


def allowed_literals(target: str) -> tuple[Any, ...] | None:
    """The values a ``section.field`` target accepts when its annotation is a Literal, else None."""
    section, field_name = target.split(".")
    owner = _section_class(section)
    if owner is None:
        return None
    hints = typing.get_type_hints(owner)
    annotation = hints.get(field_name)
    if annotation is None:
        return None
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    return None


SECTION_CLASSES: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _section_class(section: str) -> type | None:
    return SECTION_CLASSES.get(section)


def spec_problems(name: str, spec: ParamSpec, where: str) -> list[str]:
    """Range and choice checks for one hyperparameter; each message ends with ``(where)``."""
    hyper = HYPERPARAMETERS[name]
    found: list[str] = []
    limits = f"between {hyper.minimum:g} and {hyper.maximum:g}" if hyper.minimum is not None else ""

    def out_of_limits(value: float) -> bool:
        return hyper.minimum is not None and not hyper.minimum <= value <= hyper.maximum  # type: ignore[operator]

    if isinstance(spec, Choice):
        if spec.value is not None and spec.choices:
            found.append(f"{name} must give either choices or a fixed value, not both ({where})")
        if not spec.choices and spec.value is None:
            found.append(f"{name} must list at least one choice or a fixed value, but got neither ({where})")
        options = spec.options() if (spec.choices or spec.value is not None) else []
        if len(set(map(repr, options))) != len(options):
            found.append(f"{name} choices must be distinct, but got {options} ({where})")
        legal = allowed_literals(hyper.target)
        bad = [option for option in options if option not in legal] if legal is not None else []
        if bad:
            found.append(f"{name} must be chosen from {list(legal)}, but got {bad} ({where})")
        return found

    if spec.value is not None:
        if spec.low is not None or spec.high is not None:
            found.append(f"{name} must give either low/high or a fixed value, not both ({where})")
        elif out_of_limits(spec.value):
            found.append(f"{name} must be {limits}, but got {spec.value} ({where})")
        elif name == "base_width" and spec.value % 8:
            found.append(f"base_width must be a multiple of 8, but got {spec.value} ({where})")
        return found
    if spec.low is None or spec.high is None:
        found.append(f"{name} must give both low and high (or a fixed value), but got low={spec.low}, "
                     f"high={spec.high} ({where})")
        return found
    for bound in (spec.low, spec.high):
        if out_of_limits(bound):
            found.append(f"{name} must be {limits}, but got {bound} ({where})")
    if spec.low > spec.high:
        found.append(f"{name} low must be at most high, but got low={spec.low}, high={spec.high} ({where})")
    if spec.log and spec.low <= 0:
        found.append(f"{name} with log = true needs low > 0, but got low={spec.low}; set zero = true to also try 0 "
                     f"({where})")
    if isinstance(spec, IntRange) and spec.step < 1:
        found.append(f"{name} step must be at least 1, but got step={spec.step} ({where})")
    if name == "base_width":
        for bound in (spec.low, spec.high):
            if bound % 8:
                found.append(f"base_width must be a multiple of 8, but got {bound} ({where})")
    return found
