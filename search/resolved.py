"""A study config written back as one complete study TOML: what worker processes load, instead of the study file
plus ``--set`` strings parsed again in every process.

``write_resolved_study(config, path)`` writes every table of a ``StudyConfig``: ``[study]``, ``[data]`` and
``[train]`` (without the keys the search decides, which a study file may not set), ``[fidelity]``, ``[sampler]``,
``[pruner]``, every ``[space]`` entry as a spec table (the omitted ones too, at the value the study fixed them to),
and the ``[[warm_start]]`` tables. ``load_study_config(path)``, with no overrides, gives back an equal config (all
but ``source`` and ``overrides``). Paths stay as written, so the file means the same from the same working folder,
which is where ``phonetune search`` starts its workers.

``phonetune search`` (``supervisor.run_search``) writes it once per run to ``config.paths.resolved_study_path``
(``<artifacts>/resolved-study.toml``); the file also records what the last search of the study ran with.

Example::

    config = load_study_config("studies/demo.toml", ["study.n_trials=6"])
    path = write_resolved_study(config, "resolved.toml")
    assert load_study_config(path).study == config.study
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import tomli_w

from phonetune.atomic import atomic_write_text
from phonetune.configs import to_mapping
from phonetune.search.config import StudyConfig, search_owned_keys
from phonetune.search.space_spec import ParamSpec


def _without_none(table: dict[str, Any]) -> dict[str, Any]:
    """TOML has no null: a key whose value is None (an unset spec bound) is left out, which loads as None again."""
    return {key: value for key, value in table.items() if value is not None}


def _spec_table(spec: ParamSpec) -> dict[str, Any]:
    return _without_none(dataclasses.asdict(spec))


def study_tables(config: StudyConfig) -> dict[str, Any]:
    """Every table of the study file that loads back as ``config``."""
    data_owned, train_owned = search_owned_keys()
    tables: dict[str, Any] = {
        "study": to_mapping(config.study),
        "data": {key: value for key, value in to_mapping(config.data).items() if key not in data_owned},
        "train": {key: value for key, value in to_mapping(config.train).items() if key not in train_owned},
        "fidelity": to_mapping(config.fidelity),
        "timing": _without_none(to_mapping(config.timing)),
        "sampler": to_mapping(config.sampler),
        "pruner": to_mapping(config.pruner),
        "decode": to_mapping(config.decode),
        "space": {name: _spec_table(spec) for name, spec in config.space.items()},
    }
    if config.warm_start:
        tables["warm_start"] = [{"name": entry.name, **entry.values} for entry in config.warm_start]
    return tables


def write_resolved_study(config: StudyConfig, path: str | Path) -> Path:
    """Write ``config`` as one complete study TOML, atomically; see the module docstring. Returns the path."""
    overrides = f" with --set {' '.join(config.overrides)}" if config.overrides else ""
    header = (
        f"# The study {config.name!r} as resolved from {config.source}{overrides}, written by phonetune for its worker\n"
        "# processes (they load this file, nothing else). Rewritten by every search; edit the study file instead.\n\n"
    )
    return atomic_write_text(path, header + tomli_w.dumps(study_tables(config)))
