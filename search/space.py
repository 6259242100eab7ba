"""Sample one trial's ``RunConfig`` from a study's ``[space]``, never over the parameter budget.

The structure is drawn first (depth, width shape, batch norm placement, context), then the width: the trial samples
``width_fraction`` in [0, 1] and maps it (on a log scale when ``base_width.log``) into
``[base_width.low, min(base_width.high, max_base_width(structure, param_budget))]``. Every sampled model therefore
fits the budget by construction, no trial is wasted discovering that it does not, and the parameter's distribution
stays the same for every trial (which TPE needs). The derived ``base_width`` and the model's ``param_count`` are
recorded as trial user attributes (``search/attributes.py``).

The same function rebuilds a finished trial's config from its parameters (``run_config_from_params``), so a
promoted or retrained run trains exactly the model the trial did.

Example::

    study = optuna.create_study(direction="maximize")
    run_config = suggest_run_config(study.ask(), config)   # a RunConfig whose model fits config.param_budget
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import optuna

from phonetune.errors import BudgetError
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.space_spec import MOMENTUM_OPTIMIZERS, Choice, FloatRange, IntRange, ParamSpec

WIDTH_FRACTION = "width_fraction"
WIDTH_MULTIPLE = 8


def _suggest(trial: optuna.trial.BaseTrial, name: str, spec: ParamSpec) -> Any:
    """One hyperparameter's value: fixed ones are returned without touching the trial."""
    if spec.is_fixed():
        return spec.fixed_value()
    if isinstance(spec, Choice):
        return trial.suggest_categorical(name, spec.choices)
    if isinstance(spec, IntRange):
        step = 1 if spec.log else spec.step
        return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log)
    assert isinstance(spec, FloatRange)
    if spec.zero and not trial.suggest_categorical(f"{name}_on", [True, False]):
        return 0.0
    return trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log)


def width_from_fraction(fraction: float, low: int, high: int, log: bool) -> int:
    """Map ``fraction`` in [0, 1] into [low, high] (multiples of 8), on a log scale when ``log``."""
    if high <= low:
        return high
    if log:
        width = math.exp(math.log(low) + fraction * (math.log(high) - math.log(low)))
    else:
        width = low + fraction * (high - low)
    rounded = int(round(width / WIDTH_MULTIPLE)) * WIDTH_MULTIPLE
    return min(high, max(low, rounded))


def _budgeted_width(trial: optuna.trial.BaseTrial, config: StudyConfig, model: Any) -> tuple[int, int]:
    """(base_width, largest width that fits) for a model whose other fields are already sampled."""
    from phonetune.model import max_base_width

    spec = config.space["base_width"]
    if model.hidden_layers == 0:
        # One linear layer: the width is unused, so nothing is sampled (TPE treats width_fraction as conditional).
        low = spec.bounds()[0]
        return low, low
    bound = max_base_width(model, config.param_budget)
    low, high = spec.bounds()
    high = min(high, bound)
    low = min(low, high)
    if spec.is_fixed():
        return min(spec.fixed_value(), bound), bound
    fraction = trial.suggest_float(WIDTH_FRACTION, 0.0, 1.0)
    return width_from_fraction(fraction, low, high, spec.log), bound


def suggest_run_config(trial: optuna.trial.BaseTrial, config: StudyConfig, fidelity: str = "search") -> Any:
    """Sample every hyperparameter of ``config.space`` into a RunConfig for one trial of ``fidelity``.

    Works with any Optuna trial: a live ``Trial`` samples, a ``FixedTrial(params)`` replays a finished trial.
    Records ``base_width`` and ``param_count`` as user attributes. Raises BudgetError only on a bug (every sampled
    model is sized to fit).
    """
    from phonetune.model import ModelConfig, RunConfig, count_params

    space = config.space
    values: dict[str, Any] = {}
    # Structure first: the width bound depends on all of these.
    for name in ("hidden_layers", "width_shape", "batchnorm", "batchnorm_layers", "context_frames"):
        values[name] = _suggest(trial, name, space[name])
    structure = ModelConfig(
        context_frames=values["context_frames"],
        feature_width=config.data.feature_width,
        num_classes=len(config.data.phonemes),
        hidden_layers=values["hidden_layers"],
        base_width=WIDTH_MULTIPLE,
        width_shape=values["width_shape"],
        batchnorm=values["batchnorm"],
        batchnorm_layers=values["batchnorm_layers"],
    )
    base_width, width_bound = _budgeted_width(trial, config, structure)
    for name in ("activation", "dropout", "dropout_layers", "init", "optimizer"):
        values[name] = _suggest(trial, name, space[name])
    if values["optimizer"] in MOMENTUM_OPTIMIZERS:
        values["momentum"] = _suggest(trial, "momentum", space["momentum"])
    for name in ("lr", "weight_decay", "batch_size", "scheduler", "label_smoothing", "time_mask_prob",
                 "time_mask_max_frames", "freq_mask_prob", "freq_mask_max_bands"):
        values[name] = _suggest(trial, name, space[name])

    model = dataclasses.replace(
        structure,
        base_width=base_width,
        activation=values["activation"],
        dropout=values["dropout"],
        dropout_layers=values["dropout_layers"],
        init=values["init"],
    )
    fraction = config.fidelity.train_fraction if fidelity == "search" else config.fidelity.full_train_fraction
    epochs = config.fidelity.trial_epochs if fidelity == "search" else config.fidelity.full_epochs
    data = dataclasses.replace(
        config.data,
        context_frames=values["context_frames"],
        train_fraction=fraction,
        subsample_seed=config.fidelity.subsample_seed,
        time_mask_prob=values["time_mask_prob"],
        time_mask_max_frames=values["time_mask_max_frames"],
        freq_mask_prob=values["freq_mask_prob"],
        freq_mask_max_bands=values["freq_mask_max_bands"],
    )
    train_values = {
        name: values[name]
        for name in ("optimizer", "momentum", "lr", "weight_decay", "batch_size", "scheduler", "label_smoothing")
        if name in values
    }
    train = dataclasses.replace(config.train, epochs=epochs, **train_values)
    run_config = RunConfig.from_parts(data, model, train)

    param_count = count_params(run_config.model)
    if param_count > config.param_budget:
        raise BudgetError(
            f"sampled model must fit param_budget={config.param_budget:,}, but has {param_count:,} parameters "
            f"(base_width={base_width}, bound {width_bound}); this is a bug in the search space"
        )
    trial.set_user_attr(attrs.BASE_WIDTH, base_width)
    trial.set_user_attr(attrs.PARAM_COUNT, param_count)
    return run_config


def run_config_from_params(config: StudyConfig, params: Mapping[str, Any], fidelity: str = "full") -> Any:
    """The RunConfig a finished trial with ``params`` trained, at ``fidelity`` ("full" for promotion/retrain)."""
    return suggest_run_config(optuna.trial.FixedTrial(dict(params)), config, fidelity)

