"""Storage under load: 8 worker processes hammering one study on SQLite and on PostgreSQL.

Each worker process opens the study through phonetune's own storage builder (``phonetune.search.storage``), so the
engine settings measured are the ones a real search uses (SQLite busy timeout / WAL, PostgreSQL pool, heartbeats),
and runs short trials: a few sampled values, a few ``trial.report`` calls each followed by the median pruner's
``should_prune`` (which reads the finished trials back), and a millisecond of sleep per step standing in for work.
A storage error is any exception that escapes the storage (``database is locked``, a dropped connection, an Optuna
``StorageInternalError``); a worker counts it and carries on with its next trial.

The PostgreSQL server is a throwaway one on loopback, started like the test fixture does (``tests/postgres.py``);
it needs root (the server runs as the ``postgres`` user) and Debian's postgresql package.

Run: ``.venv/bin/python bench/storage.py [--workers 8] [--trials-per-worker 40]``
Prints, for each backend, trials/s, the storage error count and the CPU milliseconds per finished trial spent in the
worker processes and in the database server (on a machine with few cores, trials/s is about cores / CPU per trial,
so these say where the time went); the last line is
``ratio: X`` = PostgreSQL trials/s / SQLite trials/s at the same number of workers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

STUDY_NAME = "bench-storage"
REPORT_STEPS = 5  # intermediate values per trial, each followed by a pruning check
STEP_SLEEP_S = 0.001  # stand-in for one epoch of work: keeps trials short so storage dominates


def _objective(trial) -> float:
    import optuna

    width = trial.suggest_int("base_width", 64, 4096, log=True)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    value = 0.0
    for step in range(REPORT_STEPS):
        time.sleep(STEP_SLEEP_S)
        value = (step + 1) / REPORT_STEPS * (1.0 - abs(lr - 1e-3)) * (width % 97) / 97
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def _open_storage(url: str):
    """The storage exactly as a search opens it: the builder with ``[study]``'s default heartbeat settings."""
    from phonetune.search.config import StudySettings
    from phonetune.search.storage import build_storage

    settings = StudySettings(name=STUDY_NAME)
    return build_storage(
        url,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        max_retry=settings.max_retry,
    )


def _worker(url: str, trials: int, start_barrier, results) -> None:
    """One worker process: open the study, wait for the others, run ``trials`` trials, report (done, errors, CPU s)."""
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("phonetune").setLevel(logging.ERROR)
    storage = _open_storage(url)
    study = optuna.load_study(
        study_name=STUDY_NAME,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    start_barrier.wait()
    cpu_start = time.process_time()  # this process, all threads: the heartbeat thread's storage work counts
    done = errors = 0
    while done + errors < trials:
        try:
            # optimize (not ask/tell) so the heartbeat thread and its storage writes run as in a real worker.
            study.optimize(_objective, n_trials=1)
            done += 1
        except Exception:  # noqa: BLE001 - the objective cannot raise; anything escaping is a storage error
            errors += 1
    results.put((done, errors, time.process_time() - cpu_start))


def _postmaster_cpu_s(url: str) -> float:
    """CPU seconds used so far by the PostgreSQL server behind ``url`` (postmaster + its exited backends), 0 for
    other storages. The postmaster reaps its backends, so their time shows in its cutime/cstime once they exit."""
    if not url.startswith("postgresql"):
        return 0.0
    port = url.rsplit(":", 1)[1].split("/", 1)[0]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = [part.decode() for part in (proc / "cmdline").read_bytes().split(b"\0") if part]
            if not command or Path(command[0]).name != "postgres":
                continue
            if not any(flag == "-p" and value == port for flag, value in zip(command, command[1:])):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields after the command name: utime, stime, cutime, cstime are the 12th to 15th (clock ticks).
        return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def run_backend(url: str, workers: int, trials_per_worker: int) -> tuple[float, int, int, float, float]:
    """Hammer one fresh study at ``url``; return (trials/s, finished trials, storage errors, worker CPU seconds,
    server CPU seconds) — the CPU figures say where a 2-core machine's time went."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.create_study(study_name=STUDY_NAME, storage=_open_storage(url), direction="maximize")
    context = multiprocessing.get_context("spawn")
    start_barrier = context.Barrier(workers + 1)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(url, trials_per_worker, start_barrier, results)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    # Time from the moment every worker has loaded the study: imports and connection set-up are not storage load.
    start_barrier.wait()
    started = time.perf_counter()
    server_before = _postmaster_cpu_s(url)
    outcomes = [results.get() for _ in processes]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
    time.sleep(0.5)  # let the backends of the closed connections exit and be reaped
    worker_cpu = sum(cpu for _done, _errors, cpu in outcomes)
    server_cpu = _postmaster_cpu_s(url) - server_before
    errors = sum(errors for _done, errors, _cpu in outcomes)
    study = optuna.load_study(study_name=STUDY_NAME, storage=_open_storage(url))
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    finished = len(study.get_trials(deepcopy=False, states=finished_states))
    return finished / elapsed, finished, errors, worker_cpu, server_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--trials-per-worker", type=int, default=40)
    args = parser.parse_args()

    from postgres import throwaway_postgres

    rates = {}
    with tempfile.TemporaryDirectory(prefix="phonetune-bench-") as tmp:
        backends = {"sqlite": lambda: _nullcontext(f"sqlite:///{tmp}/bench.db"), "postgresql": throwaway_postgres}
        for name, open_backend in backends.items():
            with open_backend() as url:
                rate, finished, errors, worker_cpu, server_cpu = run_backend(url, args.workers, args.trials_per_worker)
            rates[name] = rate
            print(
                f"{name:<10} workers={args.workers} trials={finished} trials/s={rate:.1f} storage_errors={errors} "
                f"cpu_ms_per_trial: workers={1000 * worker_cpu / finished:.0f} server={1000 * server_cpu / finished:.0f}",
                flush=True,
            )
    print(f"ratio: {rates['postgresql'] / rates['sqlite']:.2f}")


def _nullcontext(value):
    import contextlib

    return contextlib.nullcontext(value)


if __name__ == "__main__":
    main()
