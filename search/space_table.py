"""The ``[space]`` table of a study file: one spec per hyperparameter, and the checks across the space.

Every hyperparameter of ``HYPERPARAMETERS`` gets a spec: the file's entry when it has one, else a fixed value taken
from the base run config (``[data]``/``[train]`` or the model defaults), so a study that searches three
hyperparameters still records all of them on every trial. Problems are collected, not raised, so that one
``ConfigError`` lists all of a file's mistakes (``search.config``).
"""

from __future__ import annotations

from typing import Any, Mapping

from phonetune.configs import collect_problems, did_you_mean
from phonetune.data_pipeline.config import DataConfig
from phonetune.model.config import ModelConfig
from phonetune.model.train_config import TrainConfig
from phonetune.search.space_spec import (
    HYPERPARAMETERS,
    SPEC_TYPES,
    Choice,
    IntRange,
    ParamSpec,
    parse_param,
    spec_problems,
)


def load_space(
    raw: Any, source: str, data: DataConfig | None, train: TrainConfig | None, problems: list[str]
) -> dict[str, ParamSpec] | None:
    """Every hyperparameter's spec; an omitted one is fixed to the base run config's value."""
    if raw is not None and not isinstance(raw, Mapping):
        problems.append(f"{source} [space] must be a table, but got {raw!r}")
        return None
    raw = raw or {}
    for key in raw:
        if key not in HYPERPARAMETERS:
            problems.append(
                f"{source} [space]: unknown hyperparameter {key!r};{did_you_mean(key, HYPERPARAMETERS)} known ones "
                f"are: {', '.join(HYPERPARAMETERS)}"
            )
    space: dict[str, ParamSpec] = {}
    for name, hyper in HYPERPARAMETERS.items():
        where = f"{source}, [space.{name}]"
        if name not in raw:
            default = base_value(hyper.target, data, train)
            if default is None:
                continue
            spec = SPEC_TYPES[hyper.kind](value=default)
        else:
            table, problem = parse_param(name, raw[name])
            if problem:
                problems.append(f"{problem} ({where})")
                continue
            spec = collect_problems(SPEC_TYPES[hyper.kind], table, f"{source} [space.{name}]", problems)
            if spec is None:
                continue
            if isinstance(spec, IntRange) and isinstance(spec.value, float):
                spec.value = int(spec.value)
        problems.extend(spec_problems(name, spec, where))
        space[name] = spec
    return space


def base_value(target: str, data: DataConfig | None, train: TrainConfig | None) -> Any:
    section, field_name = target.split(".")
    owner = {"model": ModelConfig(), "data": data, "train": train}[section]
    return getattr(owner, field_name, None) if owner is not None else None


def space_problems(space: dict[str, ParamSpec], sampler_kind: str | None, source: str) -> list[str]:
    """What a valid space may still not do: CMA-ES samples no choices; SGD with Nesterov needs momentum above 0."""
    problems = []
    if sampler_kind == "cmaes":
        sampled_choices = [name for name, spec in space.items() if isinstance(spec, Choice) and not spec.is_fixed()]
        if sampled_choices:
            problems.append(
                f"{source} [sampler]: kind = \"cmaes\" samples only numeric ranges, but these [space] entries are "
                f"choices: {', '.join(sampled_choices)}; fix each to one value or use kind = \"tpe\" or \"gp\""
            )
    if "optimizer" in space and "momentum" in space:
        if "sgd_nesterov" in space["optimizer"].options() and space["momentum"].bounds()[0] <= 0:
            problems.append(
                f"momentum must be above 0 when optimizer can be sgd_nesterov, but its low end is "
                f"{space['momentum'].bounds()[0]} ({source}, [space.momentum])"
            )
    return problems
