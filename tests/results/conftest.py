"""The study the results' tests read: one small real search, run once for the package (tiny corpus, a median
pruner so some trials are cut short); every test reads it back through optuna and compares with what the commands
produced."""

from __future__ import annotations

import pytest
from corpus import write_tiny_corpus
from optuna.trial import TrialState
from search_study import write_study

from phonetune.search.config import load_study_config
from phonetune.search.study import enqueue_warm_starts, open_study
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


STARTER = """
[[warm_start]]
name = "starter"
hidden_layers = 0
context_frames = 2
activation = "tanh"
lr = 5e-3
batch_size = 64
"""


@pytest.fixture(scope="package")
def finished(tmp_path_factory):
    """(study file, StudyConfig) of a study taken to its end as `phonetune promote` and `ensemble` do: 5 search trials
    (the first a starter warm start with no hidden layer that names an activation all the same), the best three
    retrained on all the training data, the final model chosen and scored (the tiny corpus has test labels). With
    this seed the final model is an ensemble of the starter's run and a run with a hidden layer."""
    from phonetune.search.ensemble import build_study_ensemble
    from phonetune.search.promote import promote_top_trials

    tmp_path = tmp_path_factory.mktemp("finished")
    corpus = write_tiny_corpus(tmp_path / "data")
    path = write_study(tmp_path, corpus.root, **{"study.n_trials": 5, "fidelity.train_fraction": 0.5,
                                                 "sampler.seed": 2})
    path.write_text(path.read_text() + STARTER)
    config = load_study_config(path)
    enqueue_warm_starts(open_study(config, create=True), config)
    run_worker(config)
    promote_top_trials(config, 3, progress=False)
    build_study_ensemble(config, max_members=3)
    return path, config
