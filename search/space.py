"""Sample one trial's ``RunConfig`` from a study's ``[space]``, never over the parameter limit.

Every hyperparameter of ``space_spec.HYPERPARAMETERS`` that applies to the model drawn so far is drawn in its
declared order and set on the run-config field its declaration names (``space_spec.applies``: a model without hidden
layers draws no activation, Adam no momentum); nothing here lists them by name. The width comes last: the trial samples
``width_fraction`` in [0, 1] and maps it (on a log scale when ``base_width.log``) into
``[base_width.low, min(base_width.high, max_base_width(structure, param_limit))]``. Every sampled model therefore
fits the limit by construction, no trial is wasted discovering that it does not, and the parameter's distribution
stays the same for every trial (which TPE needs). The derived ``base_width`` and the model's ``param_count`` are
recorded as trial user attributes (``search/attributes.py``).

The same function rebuilds a finished trial's config from its parameters (``run_config_from_params``), so a
promoted or retrained run trains exactly the model the trial did.

Example::

    study = optuna.create_study(direction="maximize")
    run_config = suggest_run_config(study.ask(), config)   # a RunConfig whose model fits config.param_limit
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import optuna

from phonetune.data_pipeline.config import DataConfig
from phonetune.errors import ConfigError, ParamLimitError
from phonetune.model.params import count_params, max_base_width
from phonetune.model.config import WIDTH_MULTIPLE, ModelConfig, ModelIO
from phonetune.model.train_config import RunConfig
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.warm_start import WarmStart
from phonetune.search.timing import timed_run_config
from phonetune.search.space_spec import HYPERPARAMETERS, Choice, FloatRange, IntRange, ParamSpec, applies, unused_params

WIDTH_FRACTION = "width_fraction"
# Derived from width_fraction after everything else is known (its bound depends on depth, shape and context).
DERIVED = "base_width"


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


def fraction_for_width(width: int, low: int, high: int, log: bool) -> float:
    """The ``width_fraction`` that ``width_from_fraction`` maps to ``width`` (clipped into [low, high])."""
    if high <= low:
        return 0.0
    width = min(high, max(low, width))
    if log:
        return (math.log(width) - math.log(low)) / (math.log(high) - math.log(low))
    return (width - low) / (high - low)


def width_bounds(config: StudyConfig, model: ModelConfig, io: ModelIO) -> tuple[int, int, int]:
    """(low, high, the parameter limit's bound) of the base width for a model whose other fields are known."""
    low, high = config.space[DERIVED].bounds()
    if model.hidden_layers == 0:
        return low, low, low
    bound = max_base_width(model, io, config.param_limit)
    high = min(high, bound)
    return min(low, high), high, bound


def _width_under_limit(trial: optuna.trial.BaseTrial, config: StudyConfig, model: ModelConfig, io: ModelIO) -> tuple[int, int]:
    """(base_width, largest width that fits) for a model whose other fields are already sampled."""
    spec = config.space[DERIVED]
    low, high, bound = width_bounds(config, model, io)
    if model.hidden_layers == 0:
        # One linear layer: the width is unused, so nothing is sampled (TPE treats width_fraction as conditional).
        return low, low
    if spec.is_fixed():
        return min(spec.fixed_value(), bound), bound
    fraction = trial.suggest_float(WIDTH_FRACTION, 0.0, 1.0)
    return width_from_fraction(fraction, low, high, spec.log), bound


def width_fraction_for_params(config: StudyConfig, params: Mapping[str, Any], target: int) -> float | None:
    """The ``width_fraction`` that gives the model of ``params`` (every parameter but the width) the largest width
    within ``target`` parameters (and the study's parameter limit), clipped to ``[space.base_width]``; None without hidden
    layers. The prior sampler uses it to compare structures at one parameter count."""
    run_config = suggest_run_config(optuna.trial.FixedTrial({**params, WIDTH_FRACTION: 0.0}), config)
    model, io = run_config.model, run_config.io
    if model.hidden_layers == 0:
        return None
    low, high, _bound = width_bounds(config, model, io)
    width = min(high, max(low, max_base_width(model, io, min(target, config.param_limit))))
    return fraction_for_width(width, low, high, config.space[DERIVED].log)


def ignored_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters among ``params`` (a finished trial's) that its model ignores: an older study drew them
    anyway (an activation without hidden layers); this space draws none."""
    return {name: params[name] for name in unused_params(params) if name in HYPERPARAMETERS and name != DERIVED}


def fidelity_data_config(config: StudyConfig, fidelity: str) -> DataConfig:
    """The study's data settings with the training fraction and subsample of ``fidelity``, and the share of dev a
    time-boxed search trial evaluates on."""
    searching = attrs.check_fidelity(fidelity) == attrs.SEARCH_FIDELITY
    fraction = config.fidelity.train_fraction if searching else config.fidelity.full_train_fraction
    dev_fraction = config.timing.dev_fraction if searching and config.timing.enabled else 1.0
    return dataclasses.replace(config.data, train_fraction=fraction, subsample_seed=config.fidelity.subsample_seed,
                               dev_fraction=dev_fraction)


def fidelity_epochs(config: StudyConfig, fidelity: str) -> int:
    return config.fidelity.trial_epochs if fidelity == attrs.SEARCH_FIDELITY else config.fidelity.full_epochs


def suggest_run_config(
    trial: optuna.trial.BaseTrial,
    config: StudyConfig,
    fidelity: str = attrs.SEARCH_FIDELITY,
    *,
    replays: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Sample the hyperparameters of ``config.space`` that apply into a RunConfig for one trial of ``fidelity``.

    Works with any Optuna trial: a live ``Trial`` samples, a ``FixedTrial(params)`` replays a finished trial. A
    hyperparameter the model would ignore is not drawn at all (``space_spec.applies``: no activation without hidden
    layers, no momentum for Adam...), so it stays at its run-config default and is no Optuna parameter; Optuna,
    the dashboard, the report and the sheet then show the same parameters. ``replays``: the parameters of the
    finished trial this one replays; the values it holds for ignored hyperparameters (older studies drew them)
    are kept, so its run config equals the one it trained. Records ``base_width`` and ``param_count`` as user
    attributes. Raises ParamLimitError only on a bug (every sampled model is sized to fit).
    """
    values: dict[str, Any] = {}
    for name in HYPERPARAMETERS:
        if name != DERIVED and applies(name, values):
            values[name] = _suggest(trial, name, config.space[name])
    changes: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {"epochs": fidelity_epochs(config, fidelity)}}
    for name, value in {**ignored_params(replays or {}), **values}.items():
        hyper = HYPERPARAMETERS[name]
        changes[hyper.section][hyper.field] = value
    data = dataclasses.replace(fidelity_data_config(config, fidelity), **changes["data"])
    model = ModelConfig(**changes["model"])
    io = ModelIO.of(data)
    base_width, width_bound = _width_under_limit(trial, config, model, io)
    model = dataclasses.replace(model, base_width=base_width)
    run_config = RunConfig(data, model, dataclasses.replace(config.train, **changes["train"]))

    param_count = count_params(model, io)
    if config.timing.enabled:
        run_config = timed_run_config(run_config, config.timing, fidelity, param_count)
    if param_count > config.param_limit:
        raise ParamLimitError(
            f"sampled model must fit param_limit={config.param_limit:,}, but has {param_count:,} parameters "
            f"(base_width={base_width}, bound {width_bound}); this is a bug in the search space"
        )
    trial.set_user_attr(attrs.BASE_WIDTH, base_width)
    trial.set_user_attr(attrs.PARAM_COUNT, param_count)
    return run_config


def run_config_from_params(
    config: StudyConfig, params: Mapping[str, Any], fidelity: str = attrs.FULL_FIDELITY
) -> RunConfig:
    """The RunConfig a finished trial with ``params`` trained, at ``fidelity`` ("full" for promotion/retrain)."""
    return suggest_run_config(optuna.trial.FixedTrial(dict(params)), config, fidelity, replays=params)


# What the width bound of a model depends on: a warm start that asks for a width must pin these too.
STRUCTURE = ("hidden_layers", "width_shape", "batchnorm", "batchnorm_layers", "context_frames")


def warm_start_params(config: StudyConfig, warm_start: WarmStart) -> dict[str, Any]:
    """The Optuna parameters that make a trial replay ``warm_start`` (for ``study.enqueue_trial``).

    Fixed hyperparameters are not Optuna parameters and are left out, and so is a value the warm start's model
    ignores (an activation without hidden layers: the space does not draw it); a ``zero = true`` range gets its
    on/off switch; ``base_width`` becomes the ``width_fraction`` that gives that width, capped by the parameter limit
    exactly as a sampled trial's width is (so a warm start is sized to the study's ``param_limit`` by the same
    rule).
    """
    values = warm_start.values
    fixed = {name: spec.fixed_value() for name, spec in config.space.items() if spec.is_fixed()}
    ignored = unused_params({**fixed, **values})
    params: dict[str, Any] = {}
    for name, value in values.items():
        spec = config.space[name] if name != DERIVED else None
        if spec is None or spec.is_fixed() or name in ignored:
            continue
        if isinstance(spec, FloatRange) and spec.zero:
            params[f"{name}_on"] = value != 0
            if value == 0:
                continue
        params[name] = value
    if DERIVED in values:
        structure: dict[str, Any] = {}
        for name in STRUCTURE:
            spec = config.space[name]
            if name in values:
                structure[name] = values[name]
            elif spec.is_fixed():
                structure[name] = spec.fixed_value()
            else:
                raise ConfigError(
                    f"warm start {warm_start.name!r} of {config.source} sets base_width, so it must also set {name} "
                    "(the width that fits the parameter limit depends on it)"
                )
        context = structure.pop("context_frames")
        model = ModelConfig(**structure)
        io = ModelIO.of(dataclasses.replace(config.data, context_frames=context))
        low, high, _bound = width_bounds(config, model, io)
        if model.hidden_layers > 0 and not config.space[DERIVED].is_fixed():
            params[WIDTH_FRACTION] = fraction_for_width(values[DERIVED], low, high, config.space[DERIVED].log)
    return params
