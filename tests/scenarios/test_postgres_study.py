"""A study on PostgreSQL from search to report, with a late worker and a database restart in the middle.

One search on the session's throwaway PostgreSQL server (``tests/postgres.py``), run once for the module as users
run it: ``phonetune search --workers 2``, then, once its workers are training, a ``phonetune worker`` started from
another shell joins the same study; once that worker has claimed a trial, the server is stopped with ``pg_ctl``
(fast shutdown: every connection cut) and started again a couple of seconds later. The search must still end with
exactly ``n_trials`` trials COMPLETE, none RUNNING or WAITING or failed, numbers without gaps, every process exiting
0, each of them having said that the storage stopped answering and answered again. Then ``phonetune promote``,
``export`` and ``report`` run on that PostgreSQL study and are checked against what it holds.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from corpus import write_tiny_corpus
from optuna.storages import BaseStorage
from optuna.trial import TrialState
from search_study import write_study
from shared import ONE_THREAD_ENV

from phonetune.cli.main import main
from phonetune.errors import StorageError
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig, load_study_config
from phonetune.search.promote import describe_spearman
from phonetune.search.storage import build_storage

N_TRIALS = 6
TRIAL_EPOCHS = 6
DOWNTIME_S = 2.0
DEADLINE_S = 240  # the whole search, on a machine whose two cores are shared with the rest of the suite

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@dataclass
class SearchRun:
    path: Path
    config: StudyConfig
    storage: BaseStorage  # the test's own connection to the study's database
    search_code: int
    search_output: str
    late_code: int
    late_output: str
    late_pid: int
    running_at_stop: list[int]  # trial numbers RUNNING when the server was stopped


def _trials(config: StudyConfig, storage: BaseStorage) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=config.name, storage=storage)
    return sorted(study.get_trials(deepcopy=True), key=lambda trial: trial.number)


def _wait_for(condition, deadline: float, what: str, processes: list[subprocess.Popen]):
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if all(process.poll() is not None for process in processes):
            break
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen before the deadline (or every process had exited)")


@pytest.fixture(scope="module")
def pg_search(tmp_path_factory, postgres_server) -> SearchRun:
    tmp_path = tmp_path_factory.mktemp("pg-study")
    if not postgres_server.running:
        postgres_server.start()
    url = postgres_server.create_database("pg_study")
    # About 5,700 training frames at batch size 32: an epoch takes a few hundred milliseconds, a trial seconds, so the
    # late worker joins and the restart lands while trials are running.
    corpus = write_tiny_corpus(tmp_path / "data", n_train=48, min_frames=80, max_frames=160)
    path = write_study(tmp_path, corpus.root, **{
        "study.storage": url, "study.n_trials": N_TRIALS, "fidelity.trial_epochs": TRIAL_EPOCHS,
        "fidelity.full_epochs": 2, "space.batch_size": 32,
        # A restart silences every heartbeat for its downtime plus a reconnect: far below the grace period.
        "study.grace_period": 30,
    })
    config = load_study_config(path)
    # The test's own connection, opened once: its tables exist before any phonetune process starts.
    storage = build_storage(config.paths.storage_url)
    deadline = time.monotonic() + DEADLINE_S
    search_log, late_log = tmp_path / "search.log", tmp_path / "late.log"
    with open(search_log, "wb") as search_out, open(late_log, "wb") as late_out:
        search = subprocess.Popen(
            [sys.executable, "-m", "phonetune.cli", "search", "--config", str(path), "--workers", "2", "--quiet"],
            stdout=search_out, stderr=subprocess.STDOUT,
        )
        processes = [search]
        try:
            def training() -> bool:
                try:
                    return any(trial.state == TrialState.RUNNING for trial in _trials(config, storage))
                except KeyError:  # the study is not created yet
                    return False

            _wait_for(training, deadline, "a trial of the search's workers running", processes)
            # From another shell, as on a second machine: the same study file, its own sampler seed.
            late = subprocess.Popen(
                [sys.executable, "-m", "phonetune.cli", "worker", "--config", str(path), "--worker-index", "7"],
                stdout=late_out, stderr=subprocess.STDOUT, env=ONE_THREAD_ENV,
            )
            processes.append(late)

            def late_claimed() -> list[optuna.trial.FrozenTrial]:
                trials = _trials(config, storage)
                if any(str(trial.user_attrs.get(attrs.WORKER, "")).endswith(f":{late.pid}") for trial in trials):
                    return trials
                return []

            trials = _wait_for(late_claimed, deadline, "the late worker claiming a trial", processes)
            running = [trial.number for trial in trials if trial.state == TrialState.RUNNING]
            postgres_server.stop()
            time.sleep(DOWNTIME_S)
            postgres_server.start()
            codes = [process.wait(timeout=max(1.0, deadline - time.monotonic())) for process in processes]
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            raise AssertionError(f"{exc}\n--- search:\n{search_log.read_text()[-3000:]}\n--- late worker:\n"
                                 f"{late_log.read_text()[-3000:]}") from exc
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            if not postgres_server.running:
                postgres_server.start()
    return SearchRun(path, config, storage, codes[0], search_log.read_text(), codes[1], late_log.read_text(),
                     late.pid, running)


def test_search_with_a_late_worker_finishes_through_a_database_restart(pg_search):
    run = pg_search
    outputs = f"--- search:\n{run.search_output[-4000:]}\n--- late worker:\n{run.late_output[-4000:]}"
    assert run.running_at_stop, "the server must be stopped while trials run"
    assert run.search_code == 0 and run.late_code == 0, outputs
    assert "Traceback" not in run.search_output + run.late_output, outputs
    # Each process met the restart, waited and went on.
    for output in (run.search_output, run.late_output):
        assert "stopped answering" in output and "answers again" in output, outputs

    trials = _trials(run.config, run.storage)
    states = {trial.number: trial.state.name for trial in trials}
    assert [trial.number for trial in trials] == list(range(N_TRIALS)), states
    assert all(trial.state == TrialState.COMPLETE for trial in trials), states
    # The trials running through the restart were neither failed nor retried: they finished in place.
    assert not [trial for trial in trials if attrs.RETRIED_FROM in trial.user_attrs], states
    for trial in trials:
        assert sorted(trial.intermediate_values) == list(range(1, TRIAL_EPOCHS + 1)), trial.number
        assert trial.value == max(point["dev_accuracy"] for point in trial.system_attrs[attrs.CURVES])
        assert (run.config.paths.trial_dir(trial.number) / "best.pt").is_file()
    workers = {trial.user_attrs[attrs.WORKER] for trial in trials}
    late = {worker for worker in workers if worker.endswith(f":{run.late_pid}")}
    assert late and len(workers - late) == 2, f"the search's two workers and the late one must each run trials: {workers}"
    assert f"{N_TRIALS} COMPLETE" in run.search_output


def test_promote_export_and_report_on_the_postgresql_study(pg_search, capsys, single_torch_thread):
    run = pg_search
    search = {trial.number: trial for trial in _trials(run.config, run.storage)}
    unfinished = {number: trial.state.name for number, trial in search.items() if trial.state != TrialState.COMPLETE}
    assert not unfinished, f"the search must have finished its trials (see the restart test): {unfinished}"
    ranked = sorted(search.values(), key=lambda trial: (-trial.value, trial.number))

    assert main(["promote", "--config", str(run.path), "--top", "2"]) == 0
    assert "Spearman rank correlation" in capsys.readouterr().out
    full_study = optuna.load_study(study_name=f"{run.config.name}-full", storage=run.storage)
    full = sorted(full_study.get_trials(states=(TrialState.COMPLETE,)), key=lambda trial: trial.number)
    assert sorted(trial.user_attrs[attrs.SOURCE_TRIAL] for trial in full) == sorted(t.number for t in ranked[:2])
    for trial in full:
        source = search[trial.user_attrs[attrs.SOURCE_TRIAL]]
        assert trial.params == source.params and trial.user_attrs[attrs.FIDELITY] == "full"
        assert sorted(trial.intermediate_values) == [1, 2]
        assert (run.config.paths.trial_dir(source.number, "full") / "best.pt").is_file()

    sheet = run.path.parent / "sheet.csv"
    assert main(["export", "--config", str(run.path), "--out", str(sheet)]) == 0
    with sheet.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_study = {(row["study"], int(row["number"])): row for row in rows}
    assert len(rows) == N_TRIALS + 2
    for number, trial in search.items():
        row = by_study[(run.config.name, number)]
        assert row["state"] == "COMPLETE" and row["trained_on"] == "all" and row["promoted_from"] == ""  # searched on all the data
        assert int(row["param_count"]) == trial.user_attrs[attrs.PARAM_COUNT]
    for trial in full:
        row = by_study[(f"{run.config.name}-full", trial.number)]
        assert row["trained_on"] == "all" and int(row["promoted_from"]) == trial.user_attrs[attrs.SOURCE_TRIAL]
        assert float(row["dev_accuracy"]) == pytest.approx(trial.value, abs=5e-4)

    report = run.path.parent / "report.html"
    assert main(["report", "--config", str(run.path), "--out", str(report)]) == 0
    page = report.read_text()
    section = page.split('<section id="full">', 1)[1].split("</section>", 1)[0]
    # The correlation stored in the PostgreSQL study, said with its sample size of two.
    assert describe_spearman(full_study.user_attrs.get(attrs.SPEARMAN_ATTR), 2) in section
    for trial in full:
        assert f"trial {trial.user_attrs[attrs.SOURCE_TRIAL]}" in section
    curves = page.split('<section id="curves">', 1)[1].split("</section>", 1)[0]
    assert all(f"trial {number}" in curves for number in search)


def test_a_database_that_stays_down_is_a_storage_error_naming_it(pg_search, postgres_server, monkeypatch):
    """The wait has an end: past the reconnect window the call is a StorageError naming the URL, not a hang."""
    from phonetune.search.storage import reconnect

    monkeypatch.setattr(reconnect, "RECONNECT_WINDOW_S", 2.0)
    storage = build_storage(pg_search.config.paths.storage_url)
    assert pg_search.config.name in optuna.get_all_study_names(storage)
    postgres_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StorageError) as error:
            optuna.get_all_study_names(storage)
        waited = time.monotonic() - started
    finally:
        postgres_server.start()
    message = str(error.value)
    assert pg_search.config.paths.storage_url in message and "stopped answering for 2 s" in message, message
    assert "run the same command again" in message
    assert 2.0 <= waited < 30, waited
    # The same storage object works again once the server is back.
    assert pg_search.config.name in optuna.get_all_study_names(storage)
