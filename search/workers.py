"""Workers: processes that run one study's trials until its budget is spent, and the parent that starts them.

A worker (``run_worker``, the ``phonetune worker`` command) loads the training and dev splits once, then loops:

1. under ``trial_start_lock``: fail trials whose worker died (re-queueing them), count the study's trials, and
   either pop a re-queued trial, create a new one, wait (the remaining budget is held by running trials that may
   yet die), or stop (``n_trials`` COMPLETE+PRUNED reached, or ``timeout_seconds`` passed);
2. run the trial with a heartbeat thread, then tell the storage how it ended.

Counting against the budget under the lock means N workers finish exactly ``n_trials`` trials with consecutive
numbers. Ctrl-C (SIGINT) fails the running trial and re-queues it, so the next run resumes it from its epoch
checkpoint; running the command again continues the study where it stopped.

``run_search`` (the ``phonetune search`` command) creates the study once, builds the data cache once, starts N
``phonetune worker`` subprocesses (each pinned to one GPU with ``--gpus``, round robin), and shows a progress bar
of finished trials with one line per trial.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from phonetune.data_pipeline.load import TrainingData
from phonetune.errors import ConfigError, DiskFullError, PhonetuneError, as_disk_full
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.objective import TrialObjective
from phonetune.search.optuna_private import frozen_trial
from phonetune.search.runner import load_fidelity_data
from phonetune.search.storage import TrialHeartbeat, recover_stale_trials, retry_callback, trial_start_lock
from phonetune.search.study import check_study_folders, create_sampler, enqueue_warm_starts, open_study, storage_for

logger = logging.getLogger(__name__)

COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Parameters shown in a trial's log line, in this order, when the trial sampled them.
SUMMARY_PARAMS = ("hidden_layers", "width_shape", "activation", "context_frames", "batchnorm", "dropout",
                  "optimizer", "lr", "batch_size", "scheduler")
# How long the parent waits for interrupted workers to re-queue their trials before killing them.
INTERRUPT_GRACE_S = 60.0


@dataclass
class WorkerSummary:
    """What one worker did in this run."""

    worker_index: int
    trial_states: dict[int, str] = field(default_factory=dict)  # trial number -> final state name
    stop_reason: str = ""

    def count(self, state: TrialState) -> int:
        return sum(1 for name in self.trial_states.values() if name == state.name)


@dataclass
class SearchSummary:
    """What a ``phonetune search`` run left in the study."""

    study_name: str
    storage_url: str
    states: dict[str, int]  # state name -> trials of the study in that state (all runs so far)
    n_trials: int  # the study's target (0 = no cap)
    worker_exit_codes: list[int]
    best_number: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.states.get("COMPLETE", 0) + self.states.get("PRUNED", 0)

    @property
    def reached_target(self) -> bool:
        return self.n_trials > 0 and self.finished >= self.n_trials


def typical_trial_seconds(study: optuna.Study) -> float | None:
    """Median wall time of the study's COMPLETE trials (full length, unlike pruned ones); None before the first."""
    seconds = [
        float(trial.user_attrs[attrs.WALL_SECONDS])
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if attrs.WALL_SECONDS in trial.user_attrs
    ]
    return statistics.median(seconds) if seconds else None


def budget_step(study: optuna.Study, config: StudyConfig, deadline: float | None) -> tuple[str, str]:
    """("ask" | "wait" | "done", why): what a worker does next given the study's trials and the budget."""
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
        return "ask", "budget left"
    return "wait", f"{counts[TrialState.RUNNING]} running trials hold the rest of the budget"


def trial_line(trial: FrozenTrial) -> str:
    """One log line for a finished trial: number, state, value, epochs and the main hyperparameters."""
    params = trial.params
    shown = []
    for name in SUMMARY_PARAMS:
        if name in params:
            value = params[name]
            shown.append(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}")
    if attrs.BASE_WIDTH in trial.user_attrs:
        shown.insert(1, f"base_width={trial.user_attrs[attrs.BASE_WIDTH]}")
    value = trial.value if trial.state == TrialState.COMPLETE else trial.user_attrs.get(attrs.BEST_DEV_ACCURACY)
    value_text = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
    epochs = trial.user_attrs.get(attrs.EPOCHS_RUN, 0)
    retried = trial.user_attrs.get(attrs.RETRIED_FROM)
    extra = f" (retry of {retried})" if retried is not None else ""
    return (
        f"trial {trial.number:>3} {trial.state.name:<8} dev_acc={value_text} epochs={epochs} "
        f"params={trial.user_attrs.get(attrs.PARAM_COUNT, '-')}{extra} | " + " ".join(shown)
    )


def running_line(trials: Sequence[FrozenTrial], worker_pids: Sequence[int], epochs: int) -> str:
    """The trials running now, one clause each: number, worker (``w0``.. for this search's workers, ``host:pid``
    for others), epochs done of the trial's epochs, the last dev accuracy reported."""
    clauses = []
    for trial in sorted(trials, key=lambda item: item.number):
        if trial.state != TrialState.RUNNING:
            continue
        worker = str(trial.user_attrs.get(attrs.WORKER, "?"))
        pid = worker.rsplit(":", 1)[-1]
        who = f"w{worker_pids.index(int(pid))}" if pid.isdigit() and int(pid) in worker_pids else worker
        reported = trial.intermediate_values
        last = f", dev {reported[max(reported)]:.4f}" if reported else ""
        clauses.append(f"#{trial.number} {who} epoch {len(reported)}/{epochs}{last}")
    return "running: " + ("; ".join(clauses) if clauses else "none")


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
            retry_callback(config.study.max_retry)(study, frozen)
            logger.warning("trial %d %s: marked FAIL and re-queued to resume from its checkpoint", trial.number,
                           "interrupted" if interrupted else "stopped by a full disk")
        if disk_full is not None:
            raise disk_full
        raise KeyboardInterrupt
    return frozen_trial(trial).state


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():
        # Optuna warns that heartbeats expect Study.optimize; this loop runs the heartbeat and the stale-trial
        # check itself (TrialHeartbeat, recover_stale_trials), because it must count the budget under a lock.
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()


def run_worker(
    config: StudyConfig,
    *,
    worker_index: int = 0,
    create: bool = False,
    progress: bool = False,
    data: TrainingData | None = None,
) -> WorkerSummary:
    """Run trials of ``config``'s search study until its budget is spent (see the module docstring)."""
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
    failures_in_a_row = 0
    logger.info("worker %d joined %s", worker_index, config.describe())
    while True:
        with trial_start_lock(storage, config.storage_url, study.study_name):
            recover_stale_trials(study, config.study.grace_period, on_stale)
            step, reason = budget_step(study, config, deadline)
            trial = _ask(study) if step == "ask" else None
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


def worker_command(config: StudyConfig, worker_index: int) -> list[str]:
    """The ``phonetune worker`` command line that loads the same study config (file plus overrides)."""
    if config.source == "<memory>":
        raise ConfigError("worker processes load the study config from its file, but this config was built in memory")
    command = [sys.executable, "-m", "phonetune.cli", "worker", "--config", config.source,
               "--worker-index", str(worker_index), "--quiet"]
    for override in config.overrides:
        command += ["--set", override]
    return command


def worker_env(index: int, workers: int, gpus: Sequence[str] = (), base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of worker ``index`` of ``workers``: pinned to ``gpus[index % len(gpus)]`` when GPUs are given.

    CPU workers share the cores: without a cap each would start one math thread per core, and threads fighting over
    cores make small-batch training many times slower, so each gets ``cores // workers`` (an explicit
    ``OMP_NUM_THREADS`` is respected).
    """
    env = dict(os.environ if base is None else base)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(gpus[index % len(gpus)])
    else:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    return env


def start_workers(config: StudyConfig, workers: int, gpus: Sequence[str] = ()) -> list[subprocess.Popen]:
    """Start ``workers`` worker processes, each in its own session, so a terminal Ctrl-C reaches only the parent,
    which forwards exactly one SIGINT to each."""
    processes = []
    for index in range(workers):
        env = worker_env(index, workers, gpus)
        processes.append(subprocess.Popen(worker_command(config, index), env=env, start_new_session=True))
        logger.debug("started worker %d (pid %d)%s", index, processes[-1].pid,
                     f" on GPU {env['CUDA_VISIBLE_DEVICES']}" if gpus else "")
    return processes


def _stop_workers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + INTERRUPT_GRACE_S
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("worker pid %d did not stop within %.0f s; killing it", process.pid, INTERRUPT_GRACE_S)
            process.kill()
            process.wait()


def summarize_study(study: optuna.Study, config: StudyConfig, exit_codes: list[int]) -> SearchSummary:
    trials = study.get_trials(deepcopy=False)
    states = collections.Counter(trial.state.name for trial in trials)
    summary = SearchSummary(study.study_name, config.storage_url, dict(states), config.study.n_trials, exit_codes)
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE and trial.value is not None]
    if complete:
        best = max(complete, key=lambda trial: trial.value)
        summary.best_number, summary.best_value = best.number, best.value
        summary.best_params = {**best.params, attrs.BASE_WIDTH: best.user_attrs.get(attrs.BASE_WIDTH)}
    return summary


def run_search(
    config: StudyConfig,
    *,
    workers: int = 1,
    gpus: Sequence[str] = (),
    progress: bool = True,
    poll_seconds: float = 1.0,
    deadline: float | None = None,
) -> SearchSummary:
    """Create the study once, start ``workers`` worker processes on it and follow them until they stop.

    ``deadline`` (a ``time.monotonic()`` value) is a hard stop: the workers still running then are interrupted as
    by Ctrl-C (their running trials are re-queued to resume from their checkpoints) and the summary is returned.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, but got {workers}")
    check_study_folders(config)
    # Validate the data and build its cache once here, before the workers start and each read it, and before the
    # study exists: a search refused for bad data leaves no empty study behind.
    load_fidelity_data(config, attrs.SEARCH_FIDELITY, progress=progress)
    study = open_study(config, create=True)
    enqueue_warm_starts(study, config)
    already = {trial.number for trial in study.get_trials(deepcopy=False) if trial.state.is_finished()}
    finished = sum(1 for trial in study.get_trials(deepcopy=False) if trial.state in COUNTED_STATES)
    target = config.study.n_trials
    if target and finished >= target:
        logger.info("%s already has %d of %d finished trials; nothing to run", config.describe(), finished, target)
        return summarize_study(study, config, [])
    if finished:
        logger.info("resuming %s: %d of %s trials already finished", config.describe(), finished, target or "?")
    processes = start_workers(config, workers, gpus)
    bar = tqdm(total=target or None, initial=finished, unit="trial", desc=config.name, disable=not progress)
    # The running trials, live: in the bar's tail on a terminal; otherwise a plain line whenever it changes.
    live = progress and sys.stderr.isatty()
    pids = [process.pid for process in processes]
    shown_running = ""
    try:
        while True:
            running = any(process.poll() is None for process in processes)
            trials = study.get_trials(deepcopy=False)
            now_running = running_line(trials, pids, config.fidelity.trial_epochs)
            if now_running != shown_running:
                shown_running = now_running
                if live:
                    bar.set_postfix_str(now_running)
                elif now_running != "running: none":
                    logger.info("%s", now_running)
            for trial in sorted(trials, key=lambda item: item.number):
                if trial.state.is_finished() and trial.number not in already:
                    already.add(trial.number)
                    if progress:
                        bar.write(trial_line(trial))
                    else:
                        logger.info("%s", trial_line(trial))
                    if trial.state in COUNTED_STATES:
                        bar.update(1)
            if not running:
                break
            if deadline is not None and time.monotonic() >= deadline:
                bar.write("search deadline reached: stopping workers (their running trials are re-queued)")
                _stop_workers(processes)
                continue
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        bar.write("interrupted: stopping workers (their running trials are re-queued)")
        _stop_workers(processes)
        raise
    finally:
        bar.close()
    exit_codes = [process.returncode for process in processes]
    for index, code in enumerate(exit_codes):
        if code != 0:
            logger.warning("worker %d exited with status %d", index, code)
    return summarize_study(study, config, exit_codes)
