"""Faults: a worker killed with SIGKILL mid-trial, an interrupted search, a journal storage with a dead worker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import optuna
import torch
from corpus import write_tiny_corpus
from optuna.trial import TrialState
from search_study import write_study
from shared import ONE_THREAD_ENV

from phonetune.model.checkpoint import read_checkpoint
from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config
from phonetune.search.storage import HEARTBEAT_ATTR, recover_stale_trials, retry_callback
from phonetune.search.study import open_study

# One fixed model, slow enough on a CPU (hundreds of steps per epoch) that a kill lands mid-trial.
SLOW_TRIAL = {
    "space.hidden_layers": 2,
    "space.base_width": 512,
    "space.context_frames": 8,
    "space.activation": "relu",
    "space.batch_size": 32,
    "space.lr": 1e-3,
    "fidelity.trial_epochs": 6,
    "study.n_trials": 2,
}




def start_worker(path, index):
    command = [sys.executable, "-m", "phonetune.cli", "worker", "--config", str(path),
               "--worker-index", str(index), "--quiet"]
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=ONE_THREAD_ENV)


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_interrupted_search_requeues_its_trials_and_the_rerun_finishes(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "data", n_train=40, n_dev=8, min_frames=100, max_frames=200)
    # 10 epochs, as in the bit-identical test below: the interruption follows the first epoch checkpoint with nine
    # epochs to spare even when this test process is starved for seconds on a loaded machine (20 took 54 s here).
    epochs = 10
    path = write_study(tmp_path, corpus.root, **{**SLOW_TRIAL, "study.n_trials": 1, "fidelity.trial_epochs": epochs})
    config = load_study_config(path)
    command = [sys.executable, "-m", "phonetune.cli", "search", "--config", str(path), "--workers", "1"]
    # Started with SIGINT ignored, as a script's background job is (POSIX): the search and its workers must still
    # stop on SIGINT.
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ONE_THREAD_ENV,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    storage = None
    try:
        def checkpoint_written():
            return (config.paths.trial_dir(0) / "last.pt").exists()

        wait_for(checkpoint_written, 150, "the first epoch checkpoint")
        parent.send_signal(signal.SIGINT)
        output = parent.communicate(timeout=90)[0].decode()
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 130, output
    storage = config.paths.storage_url
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [trial.state for trial in trials] == [TrialState.FAIL, TrialState.WAITING]

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=240, env=ONE_THREAD_ENV)
    assert rerun.returncode == 0, rerun.stderr
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [trial.state for trial in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs[attrs.RETRIED_FROM] == 0
    assert trials[1].user_attrs[attrs.RESUMED_FROM_EPOCH] >= 1
    assert trials[1].user_attrs[attrs.EPOCHS_RUN] == epochs


def test_journal_storage_fails_and_requeues_a_trial_whose_heartbeat_stopped(tmp_path, tiny_corpus):
    path = write_study(tmp_path, tiny_corpus.root, **{"study.storage": f"journal:///{tmp_path / 'study.log'}"})
    config = load_study_config(path)
    study = open_study(config, create=True)
    alive = study.ask()
    dead = study.ask()
    study._storage.set_trial_system_attr(alive._trial_id, HEARTBEAT_ATTR, time.time())
    study._storage.set_trial_system_attr(dead._trial_id, HEARTBEAT_ATTR, time.time() - 60)

    failed = recover_stale_trials(study, config.study.grace_period, retry_callback(config.study.max_retry))
    assert failed == [dead.number]
    reopened = open_study(config)
    states = [trial.state for trial in sorted(reopened.trials, key=lambda trial: trial.number)]
    assert states == [TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING]
    assert reopened.trials[2].system_attrs["failed_trial"] == dead.number
    # A second recovery pass finds nothing more to do.
    assert recover_stale_trials(reopened, config.study.grace_period, retry_callback(3)) == []


def test_a_trial_interrupted_mid_way_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    """Search-level resume: augmentation on, a train fraction below 1; the retried trial's value, curves and
    weights equal those of the same trial run without interruption."""
    epochs = 10  # enough that the interruption lands before the last epoch on a loaded machine
    corpus = write_tiny_corpus(tmp_path / "data", n_train=40, n_dev=8, min_frames=100, max_frames=200)
    settings = {**SLOW_TRIAL, "study.n_trials": 1, "fidelity.trial_epochs": epochs, "fidelity.train_fraction": 0.5,
                "space.time_mask_prob": 0.5, "space.time_mask_max_frames": 3, "space.freq_mask_prob": 0.5,
                "space.freq_mask_max_bands": 2}
    finished = {}
    for name in ("straight", "interrupted"):
        folder = tmp_path / name
        folder.mkdir()
        path = write_study(folder, corpus.root, **settings)
        config = load_study_config(path)
        open_study(config, create=True)
        worker = start_worker(path, 0)
        if name == "interrupted":
            # Event-driven: interrupt as soon as the first epoch's checkpoint exists, well before the last epoch.
            first = config.paths.trial_dir(0) / "last.pt"
            wait_for(first.exists, 150, "the first epoch checkpoint")
            worker.send_signal(signal.SIGINT)
            worker.communicate(timeout=60)
            assert read_checkpoint(first)["epoch"] < epochs, "the interruption came too late to test a resume"
            worker = start_worker(path, 0)
        output = worker.communicate(timeout=240)[0].decode()
        assert worker.returncode == 0, output
        trials = open_study(config).trials
        (complete,) = [trial for trial in trials if trial.state == TrialState.COMPLETE]
        finished[name] = (config, complete, len(trials))

    (_, straight, straight_count), (config, resumed, resumed_count) = finished["straight"], finished["interrupted"]
    assert straight_count == 1 and resumed_count == 2  # the interrupted attempt, then its retry
    assert resumed.user_attrs[attrs.RESUMED_FROM_EPOCH] >= 1
    assert resumed.value == straight.value
    assert resumed.intermediate_values == straight.intermediate_values
    weights = read_checkpoint(_best_checkpoint(config, resumed))["model"]
    expected = read_checkpoint(_best_checkpoint(finished["straight"][0], straight))["model"]
    assert weights.keys() == expected.keys()
    for key in weights:
        assert torch.equal(weights[key], expected[key]), key


def _best_checkpoint(config, trial):
    """The best.pt of the run folder a trial recorded (a retried trial trains in its first attempt's folder)."""
    return config.paths.run_dir_of(trial.user_attrs[attrs.CHECKPOINT_DIR]) / "best.pt"
