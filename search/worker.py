"""A worker: one process that runs a study's trials until its trial target or time limit is reached (``run_worker``, ``phonetune worker``).

A worker loads the training and dev splits once, then loops:

1. under ``trial_start_lock``: fail trials whose worker died (re-queueing them), count the study's trials, and
   either pop a re-queued trial, create a new one, wait (the rest of the target is held by running trials that may
   yet die), or stop (``n_trials`` COMPLETE+PRUNED reached, or ``timeout_seconds`` passed; ``next_step``);
2. run the trial with a heartbeat thread, then tell the storage how it ended (``run_trial``).

Counting against the target under the lock means N workers finish exactly ``n_trials`` trials with consecutive
numbers. Ctrl-C (SIGINT) fails the running trial and re-queues it, so the next run resumes it from its epoch
checkpoint; running the command again continues the study where it stopped.
"""

from __future__ import annotations

import _thread
import collections
import logging
import os
import statistics
import threading
import time
import warnings
from dataclasses import dataclass, field

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from phonetune.data_pipeline.load import TrainingData
from phonetune.errors import DiskFullError, PhonetuneError, as_disk_full
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.objective import TrialObjective
from phonetune.search.optuna_private import frozen_trial
from phonetune.search.progress_lines import trial_line
from phonetune.search.runner import load_fidelity_data, worker_name
from phonetune.search.storage import (
    TrialHeartbeat,
    fail_orphaned_trials,
    recover_stale_trials,
    retry_callback,
    trial_start_lock,
)
from phonetune.search.study import check_study_folders, create_sampler, open_study, storage_for

logger = logging.getLogger(__name__)

COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class WorkerSummary:
    """What one worker did in this run."""

    worker_index: int
    trial_states: dict[int, str] = field(default_factory=dict)  # trial number -> final state name
    stop_reason: str = ""

    def count(self, state: TrialState) -> int:
        return sum(1 for name in self.trial_states.values() if name == state.name)


def typical_trial_seconds(study: optuna.Study) -> float | None:
    """Median wall time of the study's COMPLETE trials (full length, unlike pruned ones); None before the first."""
    seconds = [
        float(trial.user_attrs[attrs.WALL_SECONDS])
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if attrs.WALL_SECONDS in trial.user_attrs
    ]
    return statistics.median(seconds) if seconds else None


def next_step(study: optuna.Study, config: StudyConfig, deadline: float | None) -> tuple[str, str]:
    """("ask" | "wait" | "done", why): what a worker does next given the study's trials, its target and its time limit."""
    counts = collections.Counter(trial.state for trial in study.get_trials(deepcopy=False))
    finished = sum(counts[state] for state in COUNTED_STATES)
    target = config.study.n_trials
    if target and finished >= target:
        return "done", f"the study has {finished} finished trials (n_trials = {target})"
    if deadline is not None and time.monotonic() >= deadline:
        return "done", f"timeout_seconds = {config.study.timeout_seconds:g} passed"
    if deadline is not None and not counts[TrialState.WAITING]:
        typical = typical_trial_seconds(study)
        if typical is not None and time.monotonic() + typical > deadline:
            # A trial that cannot finish before the deadline would only be cut off: leave the time to the others.
            return "done", f"a trial takes about {typical:.0f} s, more than the {deadline - time.monotonic():.0f} s left"
    if counts[TrialState.WAITING]:
        return "ask", "a re-queued trial is waiting"
    if not target or finished + counts[TrialState.RUNNING] < target:
        return "ask", "trials left to run"
    return "wait", f"{counts[TrialState.RUNNING]} running trials hold the rest of the target"


def run_trial(study: optuna.Study, trial: optuna.Trial, objective: TrialObjective, config: StudyConfig) -> TrialState:
    """Run one trial under a heartbeat and tell the storage its end state; Ctrl-C fails and re-queues it."""
    value: float | None = None
    state = TrialState.FAIL
    interrupted = False
    disk_full: DiskFullError | None = None
    with TrialHeartbeat.for_trial(trial, config.study.heartbeat_interval):
        try:
            value = objective(trial)
            state = TrialState.COMPLETE
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:  # one bad trial must not end the study; the worker counts failures in a row
            # ...but a full disk fails every trial after it the same way: stop, and say so once.
            disk_full = as_disk_full(exc)
            if disk_full is None:
                logger.error("trial %d failed: %s", trial.number, exc, exc_info=not isinstance(exc, PhonetuneError))
    try:
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
    except UpdateFinishedTrialError:
        # Our heartbeat stalled past the grace period and another worker already failed (and re-queued) it.
        logger.warning("trial %d was already marked finished by another worker", trial.number)
    if interrupted or disk_full is not None:
        frozen = frozen_trial(trial)
        if frozen.state == TrialState.FAIL:
            retry_callback(config.study.max_retry, interrupted_by_user=interrupted)(study, frozen)
            logger.warning("trial %d %s: marked FAIL and re-queued to resume from its checkpoint", trial.number,
                           "interrupted" if interrupted else "stopped by a full disk")
        if disk_full is not None:
            raise disk_full
        raise KeyboardInterrupt
    return frozen_trial(trial).state


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():
        # Optuna warns that heartbeats expect Study.optimize; this loop runs the heartbeat and the stale-trial
        # check itself (TrialHeartbeat, recover_stale_trials), because it must count the trials under a lock.
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()


SUPERVISOR_ENV = "PHONETUNE_SUPERVISOR_PID"
SUPERVISOR_POLL_S = 1.0


def watch_supervisor() -> None:
    """When started by ``phonetune search`` or ``run`` (``PHONETUNE_SUPERVISOR_PID``), stop as Ctrl-C would once
    that process is gone: a killed job must not leave workers training on as orphans. The running trial is failed
    and re-queued, so the next job resumes it from its checkpoint."""
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if not supervisor.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(supervisor):
            time.sleep(SUPERVISOR_POLL_S)
        logger.warning("the phonetune process that started this worker (pid %s) is gone; stopping", supervisor)
        _thread.interrupt_main()

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def run_worker(
    config: StudyConfig,
    *,
    worker_index: int = 0,
    create: bool = False,
    progress: bool = False,
    data: TrainingData | None = None,
) -> WorkerSummary:
    """Run trials of ``config``'s search study until its target or time limit is reached (see the module docstring)."""
    storage = storage_for(config, must_exist=not create)  # a worker on a mistyped study creates no database
    study = open_study(config, create=create, worker_index=worker_index, storage=storage)
    check_study_folders(config)
    study.sampler = create_sampler(config, worker_index, trials_before=len(study.get_trials(deepcopy=False)))
    if data is None:
        data = load_fidelity_data(config, attrs.SEARCH_FIDELITY, progress=progress)
    objective = TrialObjective(config, data, progress=progress)
    on_stale = retry_callback(config.study.max_retry)
    timeout = config.study.timeout_seconds
    deadline = time.monotonic() + timeout if timeout else None
    summary = WorkerSummary(worker_index)
    watch_supervisor()
    failures_in_a_row = 0
    logger.info("worker %d joined %s", worker_index, config.describe())
    while True:
        with trial_start_lock(storage, config.paths.storage_url, study.study_name):
            fail_orphaned_trials(study, on_stale)
            recover_stale_trials(study, config.study.grace_period, on_stale)
            step, reason = next_step(study, config, deadline)
            trial = _ask(study) if step == "ask" else None
            if trial is not None:
                # Claimed under the lock: a retry inherits its dead predecessor's worker, and another worker's
                # orphan check must not take this live trial for that dead one's.
                trial.set_user_attr(attrs.WORKER, worker_name())
        if step == "done":
            summary.stop_reason = reason
            break
        if trial is None:
            time.sleep(config.study.heartbeat_interval)
            continue
        state = run_trial(study, trial, objective, config)
        summary.trial_states[trial.number] = state.name
        logger.info("%s", trial_line(frozen_trial(trial)))
        failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
        if failures_in_a_row >= config.study.max_consecutive_failures:
            summary.stop_reason = f"{failures_in_a_row} trials in a row failed (max_consecutive_failures)"
            logger.error("worker %d stops: %s", worker_index, summary.stop_reason)
            break
    logger.info("worker %d stops: %s", worker_index, summary.stop_reason)
    return summary
