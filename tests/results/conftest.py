"""The study the results' tests read: one small real search, run once for the package (tiny corpus, a median
pruner so some trials are cut short); every test reads it back through optuna and compares with what the commands
produced."""

from __future__ import annotations

import pytest
from corpus import write_tiny_corpus
from optuna.trial import TrialState
from search_study import write_study

from phonetune.search.config import load_study_config
from phonetune.search.study import open_study
from phonetune.search.worker import run_worker

TRIAL_EPOCHS = 3


@pytest.fixture(scope="package")
def searched(tmp_path_factory):
    """(study file, StudyConfig, study) of 6 finished trials, some pruned after their first epochs."""
    tmp_path = tmp_path_factory.mktemp("searched")
    corpus = write_tiny_corpus(tmp_path / "data")
    path = write_study(
        tmp_path,
        corpus.root,
        **{
            "study.n_trials": 6,
            "fidelity.trial_epochs": TRIAL_EPOCHS,
            "pruner.kind": "median",
            "pruner.n_startup_trials": 2,
            "pruner.n_warmup_steps": 0,
        },
    )
    config = load_study_config(path)
    run_worker(config, create=True)
    study = open_study(config)
    states = {trial.state for trial in study.trials}
    assert {TrialState.COMPLETE, TrialState.PRUNED} <= states, f"the fixture needs both kinds, got {states}"
    return path, config, study
