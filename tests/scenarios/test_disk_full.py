"""A full disk under the trial run folders or under the study database: one named error, nothing lost, and the same
command continues once space is freed. Real full disks: a small tmpfs mounted for the test (``small_disk`` in
``tests/conftest.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
from corpus import write_tiny_corpus
from optuna.trial import TrialState
from search_study import write_study
from shared import ONE_THREAD_ENV, fill_disk

from phonetune.search.config import load_study_config
from phonetune.search.study import open_study


def _search(path: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "phonetune.cli", "search", "--config", str(path), "--workers", "1"]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=ONE_THREAD_ENV, check=False)


def _states(config) -> list[TrialState]:
    return [trial.state for trial in optuna.load_study(study_name=config.name, storage=config.paths.storage_url).trials]


def test_full_disk_under_the_run_folders_stops_with_one_named_error_and_a_rerun_finishes(tmp_path, small_disk):
    folder, resize = small_disk
    corpus = write_tiny_corpus(tmp_path / "data")
    path = write_study(tmp_path, corpus.root, **{"study.n_trials": 2, "study.artifacts_dir": str(folder / "runs")})
    config = load_study_config(path)

    first = _search(path)
    output = first.stdout + first.stderr
    assert first.returncode == 1, output
    assert "Traceback" not in output
    assert output.count("error: the disk") == 1 and str(folder) in output and "run the same command again" in output
    # The trial the full disk stopped is failed and queued again; nothing is left running.
    assert _states(config) == [TrialState.FAIL, TrialState.WAITING]

    resize("64m")
    second = _search(path)
    assert second.returncode == 0, second.stdout + second.stderr
    states = _states(config)
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert sum(state in (TrialState.COMPLETE, TrialState.PRUNED) for state in states) == 2


def test_full_disk_under_the_study_database_is_one_named_error_and_a_rerun_finishes(tmp_path, small_disk):
    folder, resize = small_disk
    resize("2m")
    corpus = write_tiny_corpus(tmp_path / "data")
    path = write_study(tmp_path, corpus.root, **{"study.n_trials": 2,
                                                  "study.storage": f"sqlite:///{folder / 'study.db'}"})
    config = load_study_config(path)
    open_study(config, create=True)  # the study exists; then the disk under it fills up
    filler = fill_disk(folder)

    first = _search(path)
    output = first.stdout + first.stderr
    assert first.returncode == 1, output
    assert "Traceback" not in output
    assert output.count("error: the disk under the study database is full") == 1, output
    assert "run the same command again" in output
    assert TrialState.RUNNING not in _states(config)

    filler.unlink()
    second = _search(path)
    assert second.returncode == 0, second.stdout + second.stderr
    states = _states(config)
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert sum(state in (TrialState.COMPLETE, TrialState.PRUNED) for state in states) == 2
