"""The Optuna study service: study config, budget-aware space, objective, workers, promotion, export, report.

``StudyConfig``/``load_study_config`` are imported eagerly (they need neither Optuna nor torch); the rest is imported
on first use, so ``phonetune inspect`` (whose dispatcher lives in this package) stays light.

Example::

    from phonetune.search import load_study_config, open_study, run_search

    config = load_study_config("studies/demo.toml", ["study.n_trials=6"])
    summary = run_search(config, workers=2)
    study = open_study(config)          # the search trials; open_study(config, "full") for promoted runs
"""

from __future__ import annotations

import importlib
from typing import Any

from phonetune.search.config import StudyConfig, load_study_config

# public name -> module under phonetune.search that defines it
_LAZY = {
    "open_study": "study",
    "storage_for": "study",
    "create_sampler": "study",
    "create_pruner": "study",
    "build_storage": "storage",
    "suggest_run_config": "space",
    "run_config_from_params": "space",
    "TrialObjective": "objective",
    "run_worker": "workers",
    "run_search": "workers",
    "load_search_splits": "workers",
}

__all__ = ["StudyConfig", "load_study_config", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"phonetune.search.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'phonetune.search' has no attribute {name!r}")
