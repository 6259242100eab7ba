"""Study files for the search tests: a tiny corpus, a SQLite (or other) storage and a small space, in tmp_path.

``write_study(tmp_path, corpus_root, **changes)`` writes ``study.toml`` and returns its path. ``changes`` are
``"table.key": value`` pairs (``"space.hidden_layers": 1``, ``"study.n_trials": 4``) merged over the defaults below,
so each test states only what it is about; ``warm_starts`` (a list of dicts) become ``[[warm_start]]`` tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

BASE: dict[str, dict[str, Any]] = {
    # grace_period: a killed worker's trial is retried after 6 silent seconds; a live one on a loaded machine may
    # miss a few one-second beats without being failed by another worker.
    "study": {"name": "tiny", "n_trials": 4, "heartbeat_interval": 1, "grace_period": 6},
    "data": {},
    "train": {"device": "cpu", "seed": 0, "eval_batch_size": 4096},
    "fidelity": {"train_fraction": 1.0, "trial_epochs": 2, "full_epochs": 2},
    "sampler": {"kind": "random", "seed": 0},
    "pruner": {"kind": "none"},
    "space": {
        "hidden_layers": {"low": 0, "high": 1},
        "base_width": {"low": 16, "high": 64, "log": True},
        "context_frames": {"low": 0, "high": 3},
        "activation": ["relu", "tanh"],
        "lr": {"low": 1e-3, "high": 1e-2, "log": True},
        "batch_size": [64, 128],
        "optimizer": "adamw",
    },
}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def write_study(tmp_path: Path, corpus_root: Path, warm_starts: Sequence[Mapping[str, Any]] = (), **changes: Any) -> Path:
    tables = {name: dict(table) for name, table in BASE.items()}
    tables["study"]["storage"] = f"sqlite:///{tmp_path / 'study.db'}"
    tables["study"]["artifacts_dir"] = str(tmp_path / "artifacts")
    tables["data"] = {"root": str(corpus_root), "cache_dir": str(tmp_path / "cache")}
    for dotted, value in changes.items():
        table, key = dotted.split(".", 1)
        if value is None:
            tables[table].pop(key, None)
        else:
            tables.setdefault(table, {})[key] = value
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in table.items())
        lines.append("")
    for warm_start in warm_starts:
        lines.append("[[warm_start]]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in warm_start.items())
        lines.append("")
    path = tmp_path / "study.toml"
    path.write_text("\n".join(lines))
    return path


# A small expert recipe and the handout's starter as warm starts, for the budgeted job's tests and benches.
WARM_STARTS = """
[[warm_start]]
name = "expert"
hidden_layers = 1
base_width = 64
activation = "tanh"
context_frames = 3
lr = 5e-3
batch_size = 64

[[warm_start]]
name = "starter"
hidden_layers = 0
context_frames = 2
"""
