"""A worker SIGKILLed in the middle of a trial: the study still finishes, with that trial retried from its checkpoint.

Real processes on real storages: four workers run a study of short trials on a tiny corpus, the test waits until
some trial has written its first epoch checkpoint, kills the worker running it with SIGKILL (no chance to clean
up), and lets the other three finish. On PostgreSQL (a throwaway server on loopback) the workers are four
independent ``phonetune worker`` processes, as on four machines; on SQLite they are the four children of one
``phonetune search --workers 4``. Either way the study must end with ``n_trials`` trials COMPLETE or PRUNED, the
killed trial FAIL (failed by a surviving worker once its heartbeat went silent), a retry of it that resumed from
the killed attempt's epoch checkpoint, nothing RUNNING or WAITING, and trial numbers without gaps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from corpus import write_tiny_corpus
from optuna.trial import TrialState
from search_study import write_study

from phonetune.model.checkpoint import read_checkpoint
from phonetune.search import attributes as attrs
from phonetune.search.attributes import SEARCH_FIDELITY
from phonetune.search.config import StudyConfig, load_study_config
from phonetune.search.runner import load_fidelity_data
from phonetune.search.storage import build_storage
from phonetune.search.study import open_study
from phonetune.search.supervisor import worker_env

N_TRIALS = 4
TRIAL_EPOCHS = 3
WORKERS = 4
RUN_DEADLINE_S = 150  # generous: four processes share two CPU cores with the rest of the suite


@dataclass
class Kill:
    trial_number: int
    pid: int
    checkpoint_epoch: int  # epochs in the killed attempt's last.pt once the process was dead


def _fault_study(tmp_path: Path, name: str, **changes) -> StudyConfig:
    # Enough frames (about 5,700) at batch size 32 that an epoch takes a few hundred milliseconds: the kill, which
    # follows the first epoch checkpoint within tens of milliseconds, lands before the trial's last epoch.
    corpus = write_tiny_corpus(tmp_path / "data", n_train=48, min_frames=80, max_frames=160)
    path = write_study(
        tmp_path,
        corpus.root,
        **{
            "study.name": name,
            "study.n_trials": N_TRIALS,
            # A beat every second, a trial declared dead after 8 silent seconds: a live worker on a loaded machine
            # (four workers on two cores, a CPU hog beside them) can miss several beats without being failed.
            "study.heartbeat_interval": 1,
            "study.grace_period": 8,
            "fidelity.trial_epochs": TRIAL_EPOCHS,
            "space.batch_size": 32,
            **changes,
        },
    )
    return load_study_config(path)


def _worker_argv(config: StudyConfig, index: int) -> list[str]:
    return [sys.executable, "-m", "phonetune.cli", "worker", "--config", config.source,
            "--worker-index", str(index)]


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the parenthesised command name (which may hold spaces): state, ppid, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _parent_pid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def _process_state(pid: int) -> str:
    try:
        return _stat_fields(pid)[0]
    except FileNotFoundError:
        return "gone"


def _kill_mid_trial(config: StudyConfig, is_ours, deadline: float) -> Kill:
    """SIGKILL the worker of a RUNNING trial whose epoch checkpoint has an epoch still to follow, then wait for it to
    die. The worker is frozen (SIGSTOP) before the decision and checked again while frozen: a check of a live worker
    followed by a kill lets it finish the trial in between on a loaded machine (CI saw a trial read as RUNNING at
    epoch 2 end COMPLETE at epoch 3 before the kill landed). A frozen worker that turns out to be past its last epoch
    or no longer RUNNING is let go (SIGCONT) and the search goes on."""
    storage = build_storage(config.paths.storage_url)
    trials_root = config.paths.artifacts_path / "trials"

    def unfinished(checkpoint: Path) -> bool:
        return int(read_checkpoint(checkpoint)["epoch"]) < TRIAL_EPOCHS

    def running_worker(number: int) -> int | None:
        # The study exists once a trial has a checkpoint (phonetune search may create it after this loop began).
        study_id = storage.get_study_id_from_name(config.name)
        trial = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, number))
        if trial.state != TrialState.RUNNING or attrs.WORKER not in trial.user_attrs:
            return None
        return int(trial.user_attrs[attrs.WORKER].rsplit(":", 1)[1])

    while time.monotonic() < deadline:
        for checkpoint in sorted(trials_root.glob("*/last.pt")):
            if not checkpoint.parent.name.isdigit() or not unfinished(checkpoint):
                continue
            number = int(checkpoint.parent.name)
            pid = running_worker(number)
            if pid is None:
                continue
            assert is_ours(pid), f"trial {number} names worker pid {pid}, which this test did not start"
            os.kill(pid, signal.SIGSTOP)
            while _process_state(pid) not in ("T", "t", "gone", "Z"):
                time.sleep(0.005)
            # A result the worker sent just before it froze reaches the database within this pause.
            time.sleep(0.2)
            if unfinished(checkpoint) and running_worker(number) == pid:
                os.kill(pid, signal.SIGKILL)
                while _process_state(pid) not in ("gone", "Z"):
                    time.sleep(0.02)
                return Kill(number, pid, int(read_checkpoint(checkpoint)["epoch"]))
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError(f"no trial wrote an epoch checkpoint under {trials_root} before the deadline")


def _assert_study_recovered(config: StudyConfig, kill: Kill) -> None:
    study = optuna.load_study(study_name=config.name, storage=build_storage(config.paths.storage_url))
    trials = sorted(study.get_trials(deepcopy=True), key=lambda trial: trial.number)
    states = {trial.number: trial.state for trial in trials}

    assert [trial.number for trial in trials] == list(range(len(trials))), "trial numbers have a gap"
    finished = [trial for trial in trials if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == N_TRIALS, states
    assert not [n for n, state in states.items() if state in (TrialState.RUNNING, TrialState.WAITING)], states
    assert states[kill.trial_number] == TrialState.FAIL, states
    assert [n for n, state in states.items() if state == TrialState.FAIL] == [kill.trial_number], states

    retries = [trial for trial in trials if trial.user_attrs.get(attrs.RETRIED_FROM) == kill.trial_number]
    assert len(retries) == 1, f"trial {kill.trial_number} must be retried exactly once: {states}"
    retry = retries[0]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.system_attrs.get("failed_trial") == kill.trial_number
    killed = trials[kill.trial_number]
    assert retry.params == killed.params, "the retry must train the same hyperparameters"
    assert 1 <= kill.checkpoint_epoch < TRIAL_EPOCHS, "the kill must land between the first and the last epoch"
    # Resumed from the killed attempt's epoch checkpoint, not retrained from scratch.
    assert retry.user_attrs[attrs.RESUMED_FROM_EPOCH] == kill.checkpoint_epoch
    epochs = [point["epoch"] for point in retry.system_attrs[attrs.CURVES]]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= kill.checkpoint_epoch
    if retry.state == TrialState.COMPLETE:
        assert len(epochs) == TRIAL_EPOCHS
        assert retry.value == pytest.approx(max(point["dev_accuracy"] for point in retry.system_attrs[attrs.CURVES]))
    resumed = read_checkpoint(config.paths.trial_dir(retry.number) / "last.pt")
    assert resumed["epoch"] == len(epochs)
    # The resumed epochs are the dead attempt's own numbers, not a re-run of them.
    killed_history = read_checkpoint(config.paths.trial_dir(kill.trial_number) / "last.pt")["history"]
    for point, before in zip(retry.system_attrs[attrs.CURVES], killed_history[: kill.checkpoint_epoch]):
        assert point["dev_accuracy"] == before["dev_acc"]


def _wait_all(processes: list[subprocess.Popen], deadline: float) -> list[int]:
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for other in processes:
                if other.poll() is None:
                    other.kill()
            raise AssertionError("workers did not finish the study before the deadline")
    return codes


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(RUN_DEADLINE_S + 60)
def test_sigkilled_worker_on_postgresql_is_retried_from_its_checkpoint(tmp_path, postgres_url):
    config = _fault_study(tmp_path, "faults-pg", **{"study.storage": postgres_url})
    # Created once before the workers start, as the README tells a cluster user to (phonetune search does this).
    open_study(config, create=True)
    load_fidelity_data(config, SEARCH_FIDELITY)
    logs = [open(tmp_path / f"worker-{index}.log", "wb") for index in range(WORKERS)]
    processes = [
        # worker_env shares the CPU cores among the workers, as `phonetune search` does for its children.
        subprocess.Popen(_worker_argv(config, index), env=worker_env(index, WORKERS), stdout=log,
                         stderr=subprocess.STDOUT)
        for index, log in enumerate(logs)
    ]
    deadline = time.monotonic() + RUN_DEADLINE_S
    try:
        pids = {process.pid for process in processes}
        kill = _kill_mid_trial(config, lambda pid: pid in pids, deadline)
        codes = _wait_all(processes, deadline)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for log in logs:
            log.close()
    worker_output = "\n".join((tmp_path / f"worker-{i}.log").read_text() for i in range(WORKERS))
    assert sorted(codes) == sorted([0, 0, 0, -signal.SIGKILL]), worker_output
    _assert_study_recovered(config, kill)


@pytest.mark.slow
@pytest.mark.timeout(RUN_DEADLINE_S + 60)
def test_sigkilled_worker_on_sqlite_is_retried_from_its_checkpoint(tmp_path):
    config = _fault_study(tmp_path, "faults-sqlite")
    log_path = tmp_path / "search.log"
    with open(log_path, "wb") as log:
        search = subprocess.Popen(
            [sys.executable, "-m", "phonetune.cli", "search", "--config", config.source,
             "--workers", str(WORKERS), "--quiet"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + RUN_DEADLINE_S
        try:
            kill = _kill_mid_trial(config, lambda pid: _parent_pid(pid) == search.pid, deadline)
            (code,) = _wait_all([search], deadline)
        finally:
            if search.poll() is None:
                search.kill()
    output = log_path.read_text()
    # The launcher notices the dead worker, the others finish the budget, and the command reports success.
    assert code == 0, output
    assert "exited with status -9" in output, output
    _assert_study_recovered(config, kill)
