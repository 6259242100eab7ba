"""Dead workers: a running trial's heartbeat, and failing (then re-queueing) the trials whose heartbeat stopped.

On RDB storages Optuna's heartbeat is on (``heartbeat_interval``/``grace_period`` from ``[study]``) and a RUNNING
trial whose heartbeat stops is failed by the next worker that starts a trial, then re-queued by
``RetryHeartbeatStaleTrialCallback`` (up to ``max_retry`` times). A journal storage has no heartbeat of its own, so
``TrialHeartbeat`` writes the time into the trial's system attribute ``phonetune:heartbeat`` instead and
``recover_stale_trials`` applies the same rule to it (hosts' clocks must roughly agree).
"""

from __future__ import annotations

import copy
import datetime
import logging
import os
import socket
import threading
import time
import warnings
from typing import Any, Callable

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from phonetune.search.attributes import WORKER as WORKER_ATTR
from phonetune.search.optuna_private import storage_backend, stored_trial_id, study_storage, trial_id

logger = logging.getLogger(__name__)

HEARTBEAT_ATTR = "phonetune:heartbeat"
# Attempts of a trial that the user's Ctrl-C ended (not counted against max_retry); carried to each retry.
INTERRUPTED_ATTR = "phonetune:interrupted_attempts"


def retry_callback(max_retry: int,
                   interrupted_by_user: bool = False) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Re-queue a dead worker's trial with its parameters and attributes, up to ``max_retry`` times.

    Reported epochs are not inherited: the retry re-reports them from the checkpoint it resumes, which may hold one
    epoch more than the dead worker managed to report. A retry that died without reporting an epoch past its
    predecessor's is not re-queued again: a trial that kills its worker at the same point twice (memory, a bad batch)
    would only spend the budget on a third and fourth death. A trial the user's Ctrl-C stopped
    (``interrupted_by_user``) is not the trial's fault: it is re-queued whatever it reached, and the attempt is not
    counted against ``max_retry`` (the count of such attempts travels with the trial in ``INTERRUPTED_ATTR``), so a
    student who stops and continues a job five times during one long trial does not lose that trial.
    """

    def retry(study: optuna.Study, trial: FrozenTrial) -> None:
        # The dead attempt's last heartbeat must not pass to the retry: between the retry's pop and its own first
        # beat, another worker would see it as long silent and fail it again.
        trial = copy.deepcopy(trial)
        trial.system_attrs.pop(HEARTBEAT_ATTR, None)
        interrupted = int(trial.system_attrs.get(INTERRUPTED_ATTR, 0)) + int(interrupted_by_user)
        if interrupted:
            trial.system_attrs[INTERRUPTED_ATTR] = interrupted
        previous = None if interrupted_by_user else previous_attempt(study, trial)
        # An attempt the user stopped did not die: a retry that dies where it stopped has died once, not twice.
        if previous is not None and interrupted == int(previous.system_attrs.get(INTERRUPTED_ATTR, 0)):
            reached = reached_epoch(previous)
            if reached_epoch(trial) <= reached:
                logger.warning(
                    "trial %d died where its previous attempt did (%s) and is not retried again; its first attempt "
                    "was trial %d", trial.number, f"after epoch {reached}" if reached else "before its first evaluation",
                    trial.system_attrs["retry_history"][0])
                return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            requeue = RetryHeartbeatStaleTrialCallback(max_retry=max_retry + interrupted,
                                                       inherit_intermediate_values=False)
        requeue(study, trial)

    return retry


def reached_epoch(trial: FrozenTrial) -> int:
    """The last epoch a trial reported (0: none)."""
    return max(trial.intermediate_values, default=0)


def previous_attempt(study: optuna.Study, trial: FrozenTrial) -> FrozenTrial | None:
    """The attempt before ``trial`` (Optuna's retry history); None when ``trial`` is its first attempt."""
    history = trial.system_attrs.get("retry_history", [])  # Optuna's retry bookkeeping (search/attributes.py)
    if not history:
        return None
    return next((item for item in study.get_trials(deepcopy=False) if item.number == history[-1]), None)


def uses_optuna_heartbeat(storage: BaseStorage) -> bool:
    # A Study wraps its RDBStorage in Optuna's _CachedStorage, which forwards the heartbeat calls to it.
    backend = storage_backend(storage)
    return isinstance(backend, RDBStorage) and backend.get_heartbeat_interval() is not None


class TrialHeartbeat:
    """While a trial runs, tell the storage every ``interval`` seconds that its worker is alive (a thread).

    RDB storages record Optuna's heartbeat; a journal storage gets the time in the ``phonetune:heartbeat`` system
    attribute. Used as a context manager around the objective.
    """

    def __init__(self, storage: BaseStorage, trial_id: int, interval: float) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial_id}", daemon=True)

    @classmethod
    def for_trial(cls, trial: optuna.Trial, interval: float) -> "TrialHeartbeat":
        return cls(study_storage(trial.study), trial_id(trial), interval)

    def _beat_once(self) -> None:
        if uses_optuna_heartbeat(self._storage):
            self._storage.record_heartbeat(self._trial_id)  # type: ignore[attr-defined]
        else:
            self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT_ATTR, time.time())

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self._beat_once()
            except Exception as exc:  # a storage hiccup must not kill the trial; the next beat retries
                logger.warning("heartbeat of trial id %d failed: %s", self._trial_id, exc)
            self._stop.wait(self._interval)

    def __enter__(self) -> "TrialHeartbeat":
        self._beat_once()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()


def _last_sign_of_life(trial: FrozenTrial) -> float:
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    if beat is not None:
        return float(beat)
    start = trial.datetime_start or datetime.datetime.now()
    return start.timestamp()


def recover_stale_trials(
    study: optuna.Study,
    grace_period: float,
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None,
) -> list[int]:
    """Fail the RUNNING trials whose worker stopped beating, and hand each to ``on_stale`` (the retry callback).

    RDB storages use Optuna's own heartbeat check; others use ``phonetune:heartbeat``. Call it under
    ``trial_start_lock`` so two workers never fail (and re-queue) the same trial. Returns the failed trial numbers.
    """
    storage = study_storage(study)
    if uses_optuna_heartbeat(storage):
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        failed = sorted(t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number in before)
    else:
        now = time.time()
        failed = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if now - _last_sign_of_life(trial) > grace_period and _fail(study, trial, on_stale):
                failed.append(trial.number)
    for number in failed:
        logger.warning("trial %d: its worker stopped sending heartbeats; marked FAIL and re-queued", number)
    return failed


def _fail(study: optuna.Study, trial: FrozenTrial,
          on_stale: Callable[[optuna.Study, FrozenTrial], None] | None) -> bool:
    """Mark a RUNNING trial FAIL and hand it to ``on_stale``; False when another process finished it first."""
    storage = study_storage(study)
    try:
        changed = storage.set_trial_state_values(stored_trial_id(trial), TrialState.FAIL)
    except UpdateFinishedTrialError:
        changed = False
    if changed and on_stale is not None:
        on_stale(study, copy.deepcopy(storage.get_trial(stored_trial_id(trial))))
    return changed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def fail_orphaned_trials(
    study: optuna.Study, on_stale: Callable[[optuna.Study, FrozenTrial], None] | None
) -> list[int]:
    """Fail the RUNNING trials whose recorded worker (``host:pid``) is a process of this host that no longer exists,
    at once rather than after the heartbeat's grace period, and hand each to ``on_stale``. A job that holds its
    study's lock knows such trials were left by a killed run; a reused pid only falls back to the grace period."""
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        recorded_host, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
        if recorded_host == host and pid.isdigit() and not _alive(int(pid)) and _fail(study, trial, on_stale):
            failed.append(trial.number)
    for number in failed:
        logger.warning("trial %d: its worker process on this host is gone; marked FAIL", number)
    return failed
