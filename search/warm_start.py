"""``[[warm_start]]`` tables: known-good configurations a study tries first, read and checked against its space.

Each table names a configuration (``name``) and sets hyperparameters by their ``[space]`` names; every value must be
one the space can produce (a choice it lists, a number inside its range), except ``base_width``, which is the width
asked for and is capped by the parameter limit exactly as a sampled trial's width is (``space.warm_start_params`` turns a
warm start into the Optuna parameters that replay it). Problems are collected with the rest of the study file's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from phonetune.configs import did_you_mean
from phonetune.search.space_spec import HYPERPARAMETERS, Choice, FloatRange, ParamSpec


@dataclass(frozen=True)
class WarmStart:
    """One ``[[warm_start]]`` table: a known-good configuration the study tries first (Optuna's ``enqueue_trial``).

    ``values`` holds hyperparameters by their ``[space]`` names; ``base_width`` is the width asked for, capped by the
    same parameter limit as sampled trials. Omitted hyperparameters are sampled as usual.
    """

    name: str
    values: dict[str, Any]


def load_warm_starts(
    raw: Any, source: str, space: dict[str, ParamSpec] | None, problems: list[str]
) -> list[WarmStart]:
    """``[[warm_start]]`` tables; each value must be one the space can produce (a choice it lists, inside a range)."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(entry, Mapping) for entry in raw):
        problems.append(f"{source}: warm_start must be an array of tables ([[warm_start]]), but got {raw!r}")
        return []
    entries = []
    for index, table in enumerate(raw):
        name = str(table.get("name", f"warm_start_{index}"))
        where = f"{source} [[warm_start]] {name!r}"
        values = {key: value for key, value in table.items() if key != "name"}
        for key, value in values.items():
            if key not in HYPERPARAMETERS:
                problems.append(f"{where}: unknown hyperparameter {key!r};{did_you_mean(key, HYPERPARAMETERS)} known "
                                f"ones are: {', '.join(HYPERPARAMETERS)}")
            elif key == "base_width":
                if isinstance(value, bool) or not isinstance(value, int) or value < 8 or value % 8:
                    problems.append(f"{where}: base_width must be a positive multiple of 8, but got {value!r}")
            elif space is not None and key in space:
                problem = _outside(space[key], value)
                if problem:
                    problems.append(f"{where}: {key} = {value!r} {problem} of [space.{key}]")
        entries.append(WarmStart(name, values))
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        problems.append(f"{source}: [[warm_start]] names must be unique, but got {names}")
    return entries


def _outside(spec: ParamSpec, value: Any) -> str:
    """Why ``value`` is not one the spec can produce, or "" when it is."""
    if isinstance(spec, Choice):
        return "" if value in spec.options() else f"is not among the choices {spec.options()}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "is not a number, as required"
    low, high = spec.bounds()
    if spec.is_fixed():
        return "" if value == spec.fixed_value() else f"differs from the fixed value {spec.fixed_value()!r}"
    if isinstance(spec, FloatRange) and spec.zero and value == 0:
        return ""
    return "" if low <= value <= high else f"is outside the range [{low}, {high}]"
