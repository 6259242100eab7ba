"""Shared pytest fixtures. The helper modules beside this file (``corpus``, ``shared``, ``postgres``, ``search_study``)
import by bare name from any test folder: pyproject.toml puts tests/ on the path (``pythonpath``)."""

from __future__ import annotations

import subprocess

import pytest
from corpus import TinyCorpus, write_tiny_corpus
from postgres import postgres_server, postgres_url  # noqa: F401  (fixtures: one server for the session)
from shared import one_torch_thread
from optuna.trial import TrialState
from search_study import write_study

from phonetune.search.config import load_study_config
from phonetune.search.study import enqueue_warm_starts, open_study
from phonetune.search.worker import run_worker


@pytest.fixture
def tiny_corpus(tmp_path) -> TinyCorpus:
    """A fresh learnable HW1P2-layout corpus (24 train, 8 dev, 6 test utterances of 20-60 frames) in tmp_path."""
    return write_tiny_corpus(tmp_path / "data")


@pytest.fixture
def single_torch_thread():
    """Tests that train tiny models in this process: one intra-op thread (see shared.one_torch_thread)."""
    with one_torch_thread():
        yield


@pytest.fixture
def small_disk(tmp_path):
    """A real full disk to be: a 64 KiB tmpfs mounted at ``tmp_path/small-disk`` (root only; skipped otherwise), as
    ``(folder, resize)``, where ``resize("64m")`` frees space as a user would. ``shared.fill_disk`` fills it."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"the disk-full tests mount a small tmpfs, which needs root ({mounted.stderr.strip()})")

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)

    yield folder, resize
    subprocess.run(["umount", "-l", str(folder)], check=False)


# The studies the results' and the final model's tests read: one small real search, run once for the session (tiny
# corpus, a median pruner so some trials are cut short), and one taken to its end; every test reads them back
# through optuna and compares with what the commands produced.
TRIAL_EPOCHS = 3


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """(study file, StudyConfig) of a study taken to its end as `phonetune promote` and `ensemble` do: 5 search trials
    (the first a starter warm start with no hidden layer that names an activation all the same), the best three
    retrained on all the training data, the final model chosen and scored (the tiny corpus has test labels). With
    this seed the final model is an ensemble of the starter's run and a run with a hidden layer."""
    from phonetune.search.final_model import build_final_model
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
    build_final_model(config, max_members=3)
    return path, config
