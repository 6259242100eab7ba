"""``--set`` overrides of a study file, checked as the user typed them.

A ``--set`` that names no key of a study file is refused by name (``--set study.n_trail=4: [study] has no key
'n_trail'; did you mean 'n_trials'?``) before the file is read, so the typo is not blamed on the file; a problem
with a value an override set is marked ``(from --set ...)`` in the file's own error.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from phonetune.configs import did_you_mean, parse_override
from phonetune.search.space_spec import HYPERPARAMETERS, SPEC_TYPES


def override_problems(overrides: Sequence[str], tables: Mapping[str, type],
                      owned: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Each ``--set`` that names no key a study file has, said as the user typed it, with the key it was close to.
    ``tables``: the study file's tables that hold a dataclass; ``owned``: per table, the keys the search decides,
    each with where a study sets it instead."""
    found = []
    for text in overrides:
        path, _value = parse_override(text)
        table, keys = path[0], path[1:]
        where = f"--set {text}"
        if table == "space":
            name = keys[0] if keys else ""
            spec_keys = [spec.name for spec in dataclasses.fields(SPEC_TYPES[HYPERPARAMETERS[name].kind])] \
                if name in HYPERPARAMETERS else []
            if name not in HYPERPARAMETERS:
                found.append(f"{where}: [space] has no hyperparameter {name!r};{did_you_mean(name, HYPERPARAMETERS)} "
                             f"known ones are: {', '.join(HYPERPARAMETERS)}")
            elif len(keys) > 2 or (len(keys) == 2 and keys[1] not in spec_keys):
                key = ".".join(keys[1:])
                found.append(f"{where}: [space.{name}] has no key {key!r};{did_you_mean(key, spec_keys)} known keys "
                             f"are: {', '.join(spec_keys)}")
        elif table in tables:
            fields = [item.name for item in dataclasses.fields(tables[table])]
            key = ".".join(keys)
            if key in owned.get(table, {}):
                found.append(f"{where}: [{table}] {key} is decided by the search; set it in {owned[table][key]} "
                             "instead")
            elif len(keys) != 1 or key not in fields:
                found.append(f"{where}: [{table}] has no key {key!r};{did_you_mean(key, fields)} known keys are: "
                             f"{', '.join(sorted(fields))}")
        else:
            hint = " ([[warm_start]] tables are edited in the study file)" if table == "warm_start" else ""
            found.append(f"{where}: a study file has no table [{table}]{hint};{did_you_mean(table, [*tables, 'space'])} "
                         f"--set names one of: {', '.join([*tables, 'space'])}")
    return found


def blame_overrides(message: str, overrides: Sequence[str]) -> str:
    """``message`` with each line about a key an override set marked ``(from --set ...)``."""
    lines = []
    for line in message.splitlines():
        for text in overrides:
            path, _value = parse_override(text)
            table, key = path[0], ".".join(path[1:2] if path[0] == "space" else path[1:])
            if any(mark in line for mark in (f"[{table}].{key}", f"[{table}.{key}]", f"[{table}]: {key}")):
                line += f" (from --set {text})"
                break
        lines.append(line)
    return "\n".join(lines)
