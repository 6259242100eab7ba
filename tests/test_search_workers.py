"""Parallel workers on one SQLite study: exactly the trial budget, no trial lost or duplicated, and resumable."""

from __future__ import annotations

import re
import subprocess
import sys

import optuna
from optuna.trial import TrialState
from search_study import write_study
from shared import ONE_THREAD_ENV

from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config


def search(path, *overrides):
    command = [sys.executable, "-m", "phonetune.cli", "search", "--config", str(path), "--workers", "2"]
    for override in overrides:
        command += ["--set", override]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=ONE_THREAD_ENV)


def test_two_workers_finish_exactly_n_trials_and_a_rerun_resumes(tmp_path, tiny_corpus):
    path = write_study(tmp_path, tiny_corpus.root, **{"study.n_trials": 2})
    first = search(path)
    assert first.returncode == 0, first.stderr
    config = load_study_config(path)
    storage = config.paths.storage_url
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 2
    # Not a terminal: the running trials are plain lines (which worker, how far), each finished trial one line.
    output = first.stdout + first.stderr
    assert re.search(r"^running: #[01] w[01] epoch [0-2]/2", output, re.MULTILINE), output[-3000:]
    for number in (0, 1):
        assert len(re.findall(rf"^trial +{number} (COMPLETE|PRUNED) ", output, re.MULTILINE)) == 1, output[-3000:]
    assert "INFO" not in output and "[I 20" not in output  # no level prefixes, no Optuna's own per-trial log

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
        assert config.paths.trial_dir(trial.number).joinpath("best.pt").exists()


def test_workers_are_pinned_to_gpus_round_robin_and_cpu_workers_share_threads(tmp_path, tiny_corpus):
    from phonetune.search.supervisor import worker_command, worker_env

    pinned = [worker_env(index, 5, ["0", "1", "3"], base={})["CUDA_VISIBLE_DEVICES"] for index in range(5)]
    assert pinned == ["0", "1", "3", "0", "1"]
    assert "OMP_NUM_THREADS" not in worker_env(0, 5, ["0"], base={})
    assert worker_env(0, 64, [], base={})["OMP_NUM_THREADS"] == "1"
    assert worker_env(0, 2, [], base={"OMP_NUM_THREADS": "4"})["OMP_NUM_THREADS"] == "4"

    path = write_study(tmp_path, tiny_corpus.root)
    config = load_study_config(path, ["study.n_trials=9"])
    command = worker_command(config, 3)
    assert command[command.index("--config") + 1] == str(path)
    assert command[command.index("--worker-index") + 1] == "3"
    assert command[command.index("--set") + 1] == "study.n_trials=9"


def test_a_config_warning_is_printed_once_not_once_per_worker(tmp_path, tiny_corpus):
    # One hidden layer over up to 3 context frames: at base_width.low = 16 the widest window is over the budget of
    # 3,000 parameters (those trials get a narrower width), which the config check warns about.
    path = write_study(tmp_path, tiny_corpus.root, **{"study.n_trials": 2, "study.param_budget": 3000,
                                                      "space.hidden_layers": 1})
    done = search(path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("even base_width=16 is over param_budget=3,000") == 1, output
