"""The parent of a search: ``run_search`` (the ``phonetune search`` command) and the worker processes it starts.

``run_search`` creates the study once, builds the data cache once, writes the study config as this process resolved
it (``resolved.write_resolved_study``, to ``<artifacts>/resolved-study.toml``), starts N ``phonetune worker``
subprocesses that load that file and nothing else (``worker.py``; each pinned to one GPU with ``--gpus``, round
robin), and shows a progress bar of finished trials with one line per trial (``progress_lines.py``). Ctrl-C, SIGTERM or the ``deadline`` sends each worker one SIGINT:
it fails its running trial and re-queues it, so the same command resumes the study where it stopped.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from phonetune.errors import WORKER_DISK_FULL_EXIT, ConfigError, DiskFullError
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.progress_lines import running_line, trial_line
from phonetune.search.ranking import best_trial
from phonetune.search.resolved import write_resolved_study
from phonetune.search.runner import load_fidelity_data
from phonetune.search.study import check_study_folders, enqueue_warm_starts, open_study
from phonetune.search.worker import COUNTED_STATES, SUPERVISOR_ENV

logger = logging.getLogger(__name__)

# The exit statuses of a worker this process stopped at a deadline: interrupted (130, or SIGINT itself) or killed
# (a worker holding no trial, or one past its grace); expected, so not worth a warning.
STOPPED_EXIT_CODES = (130, -signal.SIGINT, -signal.SIGKILL)
# How long the parent waits for interrupted workers to re-queue their trials before killing them. A worker checks
# for a stop between training steps and re-queues in a second or two; one that has not after this is stuck (a step
# or an evaluation held up by a loaded machine, I/O): killing it loses only the steps since its last checkpoint, and
# its trial is failed and retried as a dead worker's is (heartbeat), so a long grace would spend the job's budget on
# waiting.
INTERRUPT_GRACE_S = 20.0
# Each worker is a process with at least one thread; past a few per core they only queue for the cores (a few beyond
# one per core still pay where workers wait on a GPU or on the study's database).
MAX_WORKERS_PER_CORE = 4


def check_worker_count(workers: int, cores: int | None = None) -> None:
    """ConfigError for a --workers this machine cannot run: under 1, or more than MAX_WORKERS_PER_CORE per core."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, but got {workers}")
    cores = cores if cores is not None else len(os.sched_getaffinity(0))
    most = MAX_WORKERS_PER_CORE * cores
    if workers > most:
        raise ConfigError(f"--workers {workers} is more than this machine can run: it has {cores} CPU core"
                          f"{'s' if cores != 1 else ''} for this process, and past {MAX_WORKERS_PER_CORE} worker "
                          f"processes a core they only wait for it; give --workers {most} or fewer (one per GPU, "
                          "or one per core, is the usual choice)")


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


def worker_command(study_file: Path, worker_index: int) -> list[str]:
    """The ``phonetune worker`` command line of worker ``worker_index``: it loads ``study_file``, the resolved study
    (``resolved.write_resolved_study``), and nothing else."""
    return [sys.executable, "-m", "phonetune.cli", "worker", "--config", str(study_file),
            "--worker-index", str(worker_index), "--quiet"]


def worker_env(index: int, workers: int, gpus: Sequence[str] = (), base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of worker ``index`` of ``workers``: pinned to ``gpus[index % len(gpus)]`` when GPUs are given.

    CPU workers share the cores: without a cap each would start one math thread per core, and threads fighting over
    cores make small-batch training many times slower, so each gets ``cores // workers`` (an explicit
    ``OMP_NUM_THREADS`` is respected).
    """
    env = dict(os.environ if base is None else base)
    env[SUPERVISOR_ENV] = str(os.getpid())  # the worker stops when this process is gone (worker.watch_supervisor)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(gpus[index % len(gpus)])
    else:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    return env


def start_workers(study_file: Path, workers: int, gpus: Sequence[str] = ()) -> list[subprocess.Popen]:
    """Start ``workers`` worker processes on the resolved study ``study_file``, each in its own session, so a terminal
    Ctrl-C reaches only the parent, which forwards exactly one SIGINT to each."""
    processes = []
    for index in range(workers):
        env = worker_env(index, workers, gpus)
        processes.append(subprocess.Popen(worker_command(study_file, index), env=env, start_new_session=True))
        logger.debug("started worker %d (pid %d)%s", index, processes[-1].pid,
                     f" on GPU {env['CUDA_VISIBLE_DEVICES']}" if gpus else "")
    return processes


def _stop_workers(processes: list[subprocess.Popen], study: optuna.Study | None = None) -> None:
    """Stop the workers: Ctrl-C (SIGINT) to those running a trial, which then re-queue it from its checkpoint; a
    worker with no trial has nothing to save and may still be starting Python, which a SIGINT would crash with a
    fatal error: it is killed instead."""
    busy = None
    if study is not None:
        busy = {str(trial.user_attrs.get(attrs.WORKER, "")).rpartition(":")[2]
                for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    for process in processes:
        if process.poll() is None:
            if busy is None or str(process.pid) in busy:
                process.send_signal(signal.SIGINT)
            else:
                process.kill()
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
    summary = SearchSummary(study.study_name, config.paths.storage_url, dict(states), config.study.n_trials, exit_codes)
    best = best_trial(trials)
    if best is not None:
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
    status: Callable[[], str] | None = None,
    stop_when: Callable[[list[FrozenTrial]], str | None] | None = None,
) -> SearchSummary:
    """Create the study once, start ``workers`` worker processes on it and follow them until they stop.

    ``deadline`` (a ``time.monotonic()`` value) is a hard stop: the workers still running then are interrupted as
    by Ctrl-C (their running trials are re-queued to resume from their checkpoints) and the summary is returned.
    ``stop_when`` is asked with the study's trials each time one finishes; the reason it returns stops the workers
    the same way (``phonetune run``: a screen that stopped paying). ``status`` (``phonetune run``: the phase and the
    time left of its budget) leads the progress line.
    """
    check_worker_count(workers)
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
    # The workers load the config as this process resolved it (file and overrides), written once for all of them.
    study_file = write_resolved_study(config, config.paths.resolved_study_path)
    processes = start_workers(study_file, workers, gpus)
    bar = tqdm(total=target or None, initial=finished, unit="trial", desc=config.name, disable=not progress)
    # The running trials, live: in the bar's tail on a terminal; otherwise a plain line whenever it changes.
    live = progress and sys.stderr.isatty()
    pids = [process.pid for process in processes]
    shown_running = ""
    stopped_at_deadline = False
    reports, unit = ((config.timing.evaluations, "check") if config.timing.enabled
                     else (config.fidelity.trial_epochs, "epoch"))
    try:
        while True:
            codes = [process.poll() for process in processes]
            running = any(code is None for code in codes)
            trials = study.get_trials(deepcopy=False)
            now_running = running_line(trials, pids, reports, unit)
            if live and status is not None:
                bar.set_description_str(status())
            if now_running != shown_running:
                shown_running = now_running
                if live:
                    bar.set_postfix_str(now_running)
                elif not now_running.endswith("running: none"):
                    # Off a terminal each finished trial gets its line; the running ones' progress is for --verbose.
                    logger.debug("%s%s", f"{status()} | " if status is not None else "", now_running)
            newly_finished = False
            for trial in sorted(trials, key=lambda item: item.number):
                if trial.state.is_finished() and trial.number not in already:
                    already.add(trial.number)
                    newly_finished = True
                    if progress:
                        bar.write(trial_line(trial))
                    else:
                        logger.info("%s", trial_line(trial))
                    if trial.state in COUNTED_STATES:
                        bar.update(1)
            if not running:
                break
            if WORKER_DISK_FULL_EXIT in codes:
                # The others would only fill what little is left and fail the same way, one by one.
                bar.write("a worker stopped on a full disk: stopping the others (their running trials are re-queued)")
                _stop_workers([process for process in processes if process.poll() is None], study)
                stopped_at_deadline = True  # their exit statuses are the stop's, not failures to warn of
                continue
            reason = stop_when(trials) if stop_when is not None and newly_finished and not stopped_at_deadline else None
            if reason:
                bar.write(f"stopping the search: {reason} (running trials are re-queued)")
                _stop_workers(processes, study)
                stopped_at_deadline = True
                continue
            if deadline is not None and time.monotonic() >= deadline:
                bar.write("search deadline reached: stopping workers (their running trials are re-queued)")
                _stop_workers(processes, study)
                stopped_at_deadline = True
                continue
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        bar.write("interrupted: stopping workers (their running trials are re-queued)")
        _stop_workers(processes)
        raise
    finally:
        bar.close()
    exit_codes = [process.returncode for process in processes]
    if WORKER_DISK_FULL_EXIT in exit_codes:
        raise DiskFullError(
            f"search worker {exit_codes.index(WORKER_DISK_FULL_EXIT)} stopped because the disk is full (its error above "
            "says where). Kept: every finished trial and every epoch checkpoint written so far. Free space there, then "
            "run the same command again: an interrupted trial or run resumes from its last checkpoint")
    for index, code in enumerate(exit_codes):
        if stopped_at_deadline and code in STOPPED_EXIT_CODES:
            logger.debug("worker %d stopped at the deadline (status %d)", index, code)
        elif code not in (0, WORKER_DISK_FULL_EXIT):  # a full disk is said once, below
            logger.warning("worker %d exited with status %d", index, code)
    return summarize_study(study, config, exit_codes)
