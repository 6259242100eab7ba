"""Parallel workers on one SQLite study: exactly the trial budget, no trial lost or duplicated, and resumable."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
from search_study import write_study
from shared import ONE_THREAD_ENV

from phonetune.cli.main import main
from phonetune.search import attributes as attrs
from phonetune.search import config as study_config
from phonetune.search.config import load_study_config
from phonetune.search.paths import StudyPaths
from phonetune.search.supervisor import INTERRUPT_GRACE_S, run_search


def search(path, *overrides, verbose: bool = False):
    command = [sys.executable, "-m", "phonetune.cli", *(["--verbose"] if verbose else []), "search", "--config",
               str(path), "--workers", "2"]
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
    # Not a terminal: each finished trial is one line; the running trials' progress (which worker, how far) is for
    # --verbose (below).
    output = first.stdout + first.stderr
    assert "running: " not in output, output[-3000:]
    for number in (0, 1):
        assert len(re.findall(rf"^trial +{number} (COMPLETE|PRUNED) ", output, re.MULTILINE)) == 1, output[-3000:]
    assert "INFO" not in output and "[I 20" not in output  # no level prefixes, no Optuna's own per-trial log

    # The same command with a larger budget continues the study instead of starting over.
    second = search(path, "study.n_trials=4", verbose=True)
    assert second.returncode == 0, second.stderr
    # After the first run a best trial exists, so the line opens with it: "best #1 0.4123 | running: #2 w0 epoch 1/2".
    assert re.search(r"^best #[01] [0-9.]+ \| running: #[0-3] w[01] epoch [0-2]/2", second.stdout + second.stderr,
                     re.MULTILINE), (second.stdout + second.stderr)[-3000:]
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

    resolved = tmp_path / "artifacts" / "resolved-study.toml"
    command = worker_command(resolved, 3)
    assert command[command.index("--config") + 1] == str(resolved)
    assert command[command.index("--worker-index") + 1] == "3"
    assert "--set" not in command  # the resolved file carries the overrides


def test_the_parent_parses_the_study_file_once_and_workers_load_the_resolved_file(tmp_path, tiny_corpus, monkeypatch,
                                                                                   capsys):
    """`phonetune search` reads its study file once; each worker reads the resolved study the parent wrote (with the
    parent's overrides in it), once, and no --set strings. The study still records the file it was created from, and
    a rerun is checked against the settings it was created with."""
    path = write_study(tmp_path, tiny_corpus.root, **{"study.n_trials": 4})
    parsed: list[Path] = []
    read_toml = study_config.read_toml
    monkeypatch.setattr(study_config, "read_toml", lambda file: parsed.append(Path(file)) or read_toml(file))
    assert main(["search", "--config", str(path), "--set", "study.n_trials=1", "--quiet"]) == 0
    assert parsed == [path]

    resolved = StudyPaths.resolve("tiny", str(tmp_path / "artifacts")).resolved_study_path
    assert load_study_config(resolved).study.n_trials == 1  # the override, resolved into the file
    parsed.clear()
    assert main(["worker", "--config", str(resolved)]) == 0  # as a worker process starts; the study is done
    assert parsed == [resolved]
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'study.db'}").trials
    assert [trial.state for trial in trials] == [TrialState.COMPLETE]  # the worker ran nothing more

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert study.user_attrs["config_source"] == str(path)
    capsys.readouterr()
    assert main(["search", "--config", str(path), "--set", "study.n_trials=1"]) == 0  # the same settings: done
    changed = ["--set", "study.n_trials=1", "--set", "fidelity.trial_epochs=1"]
    assert main(["search", "--config", str(path), *changed]) == 1
    assert "was created with other settings" in capsys.readouterr().err


def test_a_config_warning_is_printed_once_not_once_per_worker(tmp_path, tiny_corpus):
    # One hidden layer over up to 3 context frames: at base_width.low = 16 the widest window is over the budget of
    # 3,000 parameters (those trials get a narrower width), which the config check warns about.
    path = write_study(tmp_path, tiny_corpus.root, **{"study.n_trials": 2, "study.param_limit": 3000,
                                                      "space.hidden_layers": 1})
    done = search(path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("even base_width=16 is over param_limit=3,000") == 1, output


def test_a_worker_that_does_not_stop_at_the_deadline_is_killed_after_a_short_grace(tmp_path, tiny_corpus, caplog):
    """Issue 37, case 3: a worker that cannot take the stop (frozen here with SIGSTOP, as one stuck in I/O is) held
    a job 60 s past its deadline. It is killed after ``INTERRUPT_GRACE_S``, and the search returns."""
    path = write_study(tmp_path, tiny_corpus.root, **{"study.n_trials": 1000})
    config = load_study_config(path)
    deadline = time.monotonic() + 12  # a worker starts in a few seconds, then runs trials one after another
    frozen: list[int] = []

    def freeze_a_busy_worker() -> None:
        time.sleep(max(0.0, deadline - 3 - time.monotonic()))
        def running_pids() -> list[int]:
            try:
                running = optuna.load_study(study_name=config.name, storage=config.paths.storage_url).get_trials(
                    deepcopy=False, states=(TrialState.RUNNING,))
            except KeyError:  # the study is not created yet
                return []
            return [pid for pid in (int(str(trial.user_attrs.get(attrs.WORKER, "")).rpartition(":")[2] or 0)
                                    for trial in running) if pid]

        while time.monotonic() < deadline and not frozen:
            for pid in running_pids():
                os.kill(pid, signal.SIGSTOP)
                # Frozen just after it finished its trial, the worker would hold none: the supervisor rightly kills
                # an idle worker at once. Only a worker stopped inside a trial is the case under test.
                if pid in running_pids():
                    frozen.append(pid)
                else:
                    os.kill(pid, signal.SIGCONT)
                break
            time.sleep(0.05)

    freezer = threading.Thread(target=freeze_a_busy_worker)
    freezer.start()
    caplog.set_level(logging.WARNING, logger="phonetune")
    try:
        run_search(config, workers=1, progress=False, deadline=deadline, poll_seconds=0.2)
    finally:
        freezer.join()
    late = time.monotonic() - deadline
    assert frozen, "no worker was running a trial in the deadline's last 3 s"
    assert f"worker pid {frozen[0]} did not stop within {INTERRUPT_GRACE_S:.0f} s; killing it" in caplog.text
    assert INTERRUPT_GRACE_S - 1 <= late <= INTERRUPT_GRACE_S + 10, late
    assert subprocess.run(["kill", "-0", str(frozen[0])], capture_output=True).returncode != 0  # gone
