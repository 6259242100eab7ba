"""Parallel workers on one SQLite study: exactly the trial budget, no trial lost or duplicated, and resumable."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
from optuna.trial import TrialState

from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config
from search_study import write_study


def search(path, *overrides):
    command = [sys.executable, "-m", "phonetune.search.cli", "search", "--config", str(path), "--workers", "2"]
    for override in overrides:
        command += ["--set", override]
    # One math thread per worker: the test machine's two cores are shared by every process.
    return subprocess.run(command, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_two_workers_finish_exactly_n_trials_and_a_rerun_resumes(tmp_path, tiny_corpus):
    path = write_study(tmp_path, tiny_corpus.root, **{"study.n_trials": 2})
    first = search(path)
    assert first.returncode == 0, first.stderr
    config = load_study_config(path)
    storage = config.storage_url
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 2

    # The same command with a larger budget continues the study instead of starting over.
    second = search(path, "study.n_trials=4")
    assert second.returncode == 0, second.stderr
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert sorted(trial.number for trial in trials) == [0, 1, 2, 3]
    assert all(trial.state in (TrialState.COMPLETE, TrialState.PRUNED) for trial in trials)
    assert "4 COMPLETE" in second.stdout
    workers = {trial.user_attrs[attrs.WORKER] for trial in trials}
    assert len(workers) >= 2  # two runs of two worker processes each
    for trial in trials:
        assert config.trial_dir(trial.number).joinpath("best.pt").exists()
