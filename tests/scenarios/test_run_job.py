"""`phonetune run --budget` as users run it (and stop it): the whole job on a small corpus within its budget, killed in
the screen and in the final run and continued, and the starts it must refuse without leaving anything behind."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from optuna_dashboard import get_note
from corpus import write_tiny_corpus
from optuna.trial import TrialState
from search_study import WARM_STARTS, write_study
from shared import fill_disk

from phonetune.cli.main import main
from phonetune.errors import BudgetError, StorageError
from phonetune.job.clock import format_seconds
from phonetune.job.run import check_same_data, data_sizes, job_state_path, run_job
from phonetune.model.checkpoint import read_checkpoint
from phonetune.model.speed import MAX_REFIT, Speed
from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config
from phonetune.search.study import open_study

pytestmark = pytest.mark.slow



def _study(tmp_path: Path, **changes) -> Path:
    corpus = write_tiny_corpus(tmp_path / "data", n_train=160, n_dev=16, n_test=8)
    settings = {"study.n_trials": 50, "sampler.kind": "tpe", "sampler.n_startup_trials": 2,
                "fidelity.full_epochs": 40, "space.base_width": {"low": 16, "high": 256, "log": True}, **changes}
    path = write_study(tmp_path, corpus.root, **settings)
    path.write_text(path.read_text() + WARM_STARTS)
    return path


def _arguments(path: Path, budget: str, workers: int = 1, *extra: str) -> list[str]:
    return ["run", "--config", str(path), "--budget", budget, "--workers", str(workers), "--quiet", *extra]


def _command(path: Path, budget: str, workers: int = 1, *extra: str) -> list[str]:
    return [sys.executable, "-m", "phonetune.cli", *_arguments(path, budget, workers, *extra)]


def _run(path: Path, budget: str, workers: int = 1, timeout: float = 300, *extra: str):
    return subprocess.run(_command(path, budget, workers, *extra), capture_output=True, text=True, timeout=timeout,
                          check=False)


@dataclasses.dataclass
class _Refusal:
    returncode: int
    stderr: str


def _run_here(capsys, path: Path, budget: str, workers: int = 1, *extra: str) -> _Refusal:
    """``phonetune run`` called in this process, for starts that are refused before any training: the same
    ``main()`` as the command, without starting Python and torch again for each (13 of them took 35 s as processes).
    The speed probe may leave this process at one torch thread; it is given back its threads after."""
    threads = torch.get_num_threads()
    capsys.readouterr()
    try:
        code = main(_arguments(path, budget, workers, *extra))
    finally:
        torch.set_num_threads(threads)
    return _Refusal(code, capsys.readouterr().err)


def _summary(done) -> dict:
    return json.loads(Path(done.stdout.strip().splitlines()[-1].split(": ", 1)[1]).read_text())


def test_run_holds_its_budget_beside_a_cpu_hog_continues_the_screens_winner_and_refuses_changed_options_once_done(
        tmp_path, capsys):
    path = _study(tmp_path)
    # Another process takes a core for the whole job (on this 2-core machine, half of it): the plan, the screen's
    # trials and the final run's replanned end must still keep to the budget.
    budget = 54
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        started = time.monotonic()
        done = _run(path, f"{budget}s")
        wall = time.monotonic() - started
    finally:
        hog.kill()
        hog.wait()
    assert done.returncode == 0, done.stderr[-3000:]
    assert wall <= budget * 1.12, f"a {budget} s budget took {wall:.0f} s"
    lines = done.stdout.strip().splitlines()
    assert lines[-2].startswith("submission: ") and lines[-1].startswith("summary: ")
    # At this budget no screen pays (the compute-optimal model is under the cap, the cap model needs every minute,
    # or the time left would hold too few trials to compare): a direct plan, said so with its reason.
    assert any(line.startswith("screen: none (") and any(reason in line for reason in (
        "compute-optimal", "needs the whole time", "trials, fewer than the")) for line in lines), done.stdout
    assert "starter: not screened, it has no hidden layer" in done.stdout
    summary = _summary(done)
    assert summary["spent_s"] <= budget * 1.05 and 0 < summary["test_accuracy"] <= 1
    plan, screen = summary["plan"], summary["screen"]
    # Beside the hog a slow screen may end with its trials cut; the job then continues the one that got furthest.
    assert plan["screen_s"] > 0 and plan["final_params"] > 0 and screen["trials"] >= 1
    # The plan priced its sizes from a measured step of the model it would most likely train (the expert recipe
    # resized), not from the generic probe alone: at that size the refit line gives the measured step, unless the
    # measurement (beside the hog) was so far off the probe that the slope stopped at MAX_REFIT times the probe's.
    refit = plan["refit_step"]
    assert refit and f"refit through a timed step of {refit['params']:,} parameters" in done.stderr, plan
    params, batch, measured, probed = refit["params"], refit["batch_size"], refit["measured_s"], refit["line_s"]
    line = Speed(**plan["speed"])
    priced = line.seconds_per_frame(params, batch) * batch
    # The probe's own slope at that size, which the refit may move at most MAX_REFIT times (either way).
    probe_slope = (probed / batch - line.fixed - line.per_step / batch) / params
    clamped = (MAX_REFIT if measured > probed else 1 / MAX_REFIT) * probe_slope
    assert priced == pytest.approx(measured, rel=1e-6) or line.per_param == pytest.approx(clamped, rel=1e-6), (
        plan["why"], plan["speed"], refit)
    assert screen["complete_trials"] >= 1 or "cut after" in done.stderr or "cut before" in done.stderr, (
        done.stderr[-3000:])
    # At this budget the expert at the cap needs every minute: a direct plan, the expert resized to the planned size
    # (the starter has no hidden layer and is never screened), its screen trial the first tenth of its final run.
    assert plan["kind"] == "direct" and list(screen["warm_starts"]), screen
    assert all(name.startswith("expert") for name in screen["warm_starts"]), screen
    assert all(item["state"] in ("COMPLETE", "FAIL") for item in screen["warm_starts"].values()), screen
    winner = screen["winner"]["trial"]
    config = load_study_config(path)

    # The leaderboard is printed before the paths; the final model's dev diagnostics and metadata lie beside it.
    board = done.stdout.split("leaderboard (final models, best dev accuracy first):", 1)[1].split("spent ", 1)[0]
    (row,) = [line for line in board.splitlines() if f"run of trial {winner} " in line]
    model = summary["final_model"]
    # Its rows compare models by their own argmax; the submission's decoded labels have a line of their own.
    assert row.rstrip().endswith("yes") and f"{model['test_argmax_accuracy']:.4f}" in row
    # The submission holds the network's own labels; the sequence decode's are beside it, each scored.
    assert "labels: each frame's argmax, the network's own (dev " in done.stdout
    assert "beside it, submission-decoded.csv: the likeliest phoneme sequence" in done.stdout
    assert summary["test_accuracy"] == model["test_accuracy"] == model["test_argmax_accuracy"]
    assert (Path(model["dev_score_dir"]) / "confusion.html").is_file()
    # The dashboard's Note page of each study says what the job made, final model first (issue 36, item 4).
    for fidelity in (attrs.SEARCH_FIDELITY, attrs.FULL_FIDELITY):
        note = get_note(open_study(config, fidelity))
        assert note.startswith("## The final model") and f"dev **{model['dev_accuracy']:.4f}**" in note, note
        assert f"test **{model['test_argmax_accuracy']:.4f}**, each by the network's argmax" in note
        assert "- **screen**: none:" in note and f"[{config.name}-full: the full-data runs](../" in note
    metadata = json.loads(Path(model["metadata"]).read_text())
    assert [member["search_trial"] for member in metadata["members"]] == [winner]
    assert 0 < metadata["members"][0]["epochs"] and metadata["members"][0]["run_config"]["train"]["total_steps"] > 0

    # The final run is the winner's own trial continued: same folder lineage, its evaluations inherited, its
    # learning rate at zero at its last step, the end its schedule had (replanned to the deadline as it ran).
    full = open_study(config, attrs.FULL_FIDELITY)
    (final,) = [trial for trial in full.trials if trial.state == TrialState.COMPLETE]
    assert final.user_attrs[attrs.SOURCE_TRIAL] == winner
    last = read_checkpoint(config.paths.trial_dir(winner, attrs.FULL_FIDELITY) / "last.pt")
    schedule = last["scheduler"]["lr_lambdas"][0]
    if "no time is left to continue the final run" not in done.stderr:  # else the hog slowed the screen past its end
        assert last["step"] == schedule["total"] and last["history"][-1]["lr"] == 0.0, done.stderr[-3000:]
    if "cut before its first evaluation" not in done.stderr:  # else the hog left the trial nothing to continue
        assert final.user_attrs[attrs.RESUMED_FROM_EPOCH] >= 1
        trial_checkpoint = read_checkpoint(config.paths.trial_dir(winner) / "last.pt")
        pause = trial_checkpoint["run_config"]["train"]["pause_at_step"]
        if screen["winner"]["state"] == "COMPLETE":
            assert trial_checkpoint["step"] == pause <= last["step"]
        else:  # the hog made the screen's deadline cut the winner before the end of its box; it was continued
            assert trial_checkpoint["step"] < pause and trial_checkpoint["step"] <= last["step"]

    with open(summary["sheet"], newline="") as handle:
        final_row = list(csv.DictReader(handle))[-1]
    assert final_row["state"] == "FINAL" and float(final_row["test_accuracy"]) == pytest.approx(
        summary["test_accuracy"], rel=5e-4)

    # A finished job: the same command repeats its result at once; another option is refused, not ignored.
    again = _run(path, f"{budget}s", timeout=120)
    assert again.returncode == 0 and _summary(again)["test_accuracy"] == summary["test_accuracy"]
    # The rest in this process (the same main(), without a torch import each: about 4 s apiece here).
    changed = _run_here(capsys, path, f"{budget}s", 2)
    assert changed.returncode == 1 and "workers: 1 -> 2" in changed.stderr and "--set study.name" in changed.stderr
    longer = _run_here(capsys, path, "90s")
    assert longer.returncode == 1 and f"--budget: {format_seconds(budget)} -> 1 min 30 s" in longer.stderr
    elsewhere = tmp_path / "elsewhere.csv"  # an output option is honoured, not ignored, on a finished job
    resheet = _run_here(capsys, path, f"{budget}s", 1, "--sheet", str(elsewhere))
    assert resheet.returncode == 0 and elsewhere.read_text() == Path(summary["sheet"]).read_text()
    other_study = _run_here(capsys, path, f"{budget}s", 1, "--set", "fidelity.trial_epochs=3")
    assert other_study.returncode == 1 and "fidelity.trial_epochs: 2 -> 3" in other_study.stderr  # named, not a digest

    # A study kept read-only (a copy for the record, a read-only mount) still reprints its result; a command that
    # would write is refused by name, not with a traceback.
    if _mount_read_only(tmp_path):
        try:
            reprint = _run(path, f"{budget}s", timeout=120)
            assert reprint.returncode == 0 and _summary(reprint)["test_accuracy"] == summary["test_accuracy"], (
                reprint.stderr[-3000:])
            fresh = _run_here(capsys, path, f"{budget}s", 1, "--fresh")
            assert fresh.returncode == 1 and "cannot be opened for writing" in fresh.stderr, fresh.stderr
            assert "Traceback" not in fresh.stderr and "Read-only file system" in fresh.stderr
        finally:
            subprocess.run(["umount", str(tmp_path)], check=True)

    # What a finished job names is checked before it is reprinted. A deleted submission and a truncated report are
    # rebuilt from the final checkpoint and the stored studies, the same labels as before, and said so.
    submission, report = Path(summary["submission"]), Path(summary["report"])
    labels = submission.read_bytes()
    submission.unlink()
    report.write_text(report.read_text()[:100])
    rebuilt = _run_here(capsys, path, f"{budget}s")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilding them" in rebuilt.stderr and f"submission {submission} is missing" in rebuilt.stderr
    assert f"report {report} has 100 bytes" in rebuilt.stderr
    assert submission.read_bytes() == labels and report.stat().st_size > 1000
    resummary = json.loads((config.paths.artifacts_path / "run" / "summary.json").read_text())
    assert resummary["spent_s"] == summary["spent_s"] and len(resummary["rebuilt"]["outputs"]) == 2
    assert _run_here(capsys, path, f"{budget}s").returncode == 0  # whole again: nothing more to rebuild
    # A truncated final checkpoint cannot be rebuilt: named, with the command that trains it again, and exit 1.
    checkpoint = config.paths.trial_dir(winner, attrs.FULL_FIDELITY) / "best.pt"
    with open(checkpoint, "r+b") as handle:
        handle.truncate(10_000)
    broken = _run_here(capsys, path, f"{budget}s")
    assert broken.returncode == 1 and f"checkpoint of trial {winner} {checkpoint} has 10,000 bytes" in broken.stderr
    assert "--fresh" in broken.stderr and "Traceback" not in broken.stderr


def _mount_read_only(folder: Path) -> bool:
    """``folder`` bind-mounted read-only over itself (root only); False where this machine does not allow it."""
    bound = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, check=False)
    if bound.returncode != 0:
        return False
    remounted = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True, check=False)
    if remounted.returncode != 0:
        subprocess.run(["umount", str(folder)], check=False)
        return False
    return True


def _wait_for(predicate, seconds: float, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _workers_of(path: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"phonetune.cli worker --config {path.parent}"], capture_output=True,
                           text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


# A size cap small enough that the tiny corpus saturates it in seconds: the plan screens (issue 34's capped regime).
CAPPED = {"space.base_width": {"low": 16, "high": 32, "log": True}}


def test_a_capped_job_killed_in_its_screen_and_in_its_final_run_continues_and_still_holds_its_budget(tmp_path):
    path = _study(tmp_path, **CAPPED)
    config = load_study_config(path)
    state_path = config.paths.artifacts_path / "run" / "state.json"
    budget = 100  # a screen of about nine whole runs, or four on a machine that prepares the data slowly

    # Killed (SIGKILL) while the screen trains: its workers must not train on as orphans.
    first = subprocess.Popen(_command(path, f"{budget}s", 2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    def screen_training() -> bool:
        try:
            trials = open_study(config).trials
        except StorageError:  # the screen has not created its study yet
            return False
        return any(trial.state == TrialState.RUNNING for trial in trials)

    in_screen = _wait_for(screen_training, 120, first)
    if not in_screen:
        first.kill()
        out, err = first.communicate()
        pytest.fail(f"the job ended before its screen could be killed:\n{out.decode()[-2000:]}\n{err.decode()[-3000:]}")
    time.sleep(3)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    spent_at_kill = json.loads(state_path.read_text())["spent_s"]
    deadline = time.monotonic() + 15
    while _workers_of(path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _workers_of(path), "the killed job's workers kept training"

    # Continued, then killed again once the final run has a checkpoint of its own.
    second = subprocess.Popen(_command(path, f"{budget}s", 2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)

    def final_checkpointed() -> bool:
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        source = (state.get("final") or {}).get("source")
        checkpoint = config.paths.trial_dir(source, attrs.FULL_FIDELITY) / "last.pt" if source is not None else None
        return checkpoint is not None and checkpoint.exists() and len(read_checkpoint(checkpoint)["history"]) >= 1

    assert _wait_for(final_checkpointed, 200, second), "the job ended before its final run could be killed"
    os.killpg(second.pid, signal.SIGKILL)
    second.wait()
    state = json.loads(state_path.read_text())
    assert state["spent_s"] >= spent_at_kill  # the time spent before the first kill was not given back
    source = state["final"]["source"]
    killed_at = len(read_checkpoint(config.paths.trial_dir(source, attrs.FULL_FIDELITY) / "last.pt")["history"])
    # Beside a load the final run can be a single evaluation long (the time left buys little at the step time it
    # measures), and the kill then lands after its end: the rerun must use that run, not train it again.
    ended_before_kill = [trial.number for trial in open_study(config, attrs.FULL_FIDELITY).trials
                         if trial.state == TrialState.COMPLETE]

    done = _run(path, f"{budget}s", 2, 300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = _summary(done)
    assert summary["spent_s"] <= budget * 1.1
    # The plan screened whole runs at the cap (the expert resized to it, then moves of the best), and the final run
    # trained the winner from scratch: its first evaluation is its own, not its trial's.
    plan, screen = summary["plan"], summary["screen"]
    assert plan["kind"] == "screened" and plan["final_params"] == plan["size_cap"], (plan["why"], plan["prepare_s"])
    assert screen["trials"] >= 2 and any(name.startswith("expert") for name in screen["warm_starts"]), screen
    assert summary["final_run"]["source"] == source and not summary["final_run"]["continues"]
    trials = open_study(config).trials
    # (A trial the kill stopped while its worker was still drawing its values has only some of them.)
    assert all(trial.params["scheduler"] in ("linear", "cosine", "onecycle") for trial in trials
               if "scheduler" in trial.params), [
        (trial.number, trial.state.name, trial.params, trial.user_attrs.get(attrs.MOVE)) for trial in trials]
    moved = [trial for trial in trials if trial.user_attrs.get(attrs.MOVE)]
    assert all(trial.user_attrs[attrs.MUTATED_FROM] < trial.number for trial in moved)
    full = open_study(config, attrs.FULL_FIDELITY)
    complete = [trial for trial in full.trials if trial.state == TrialState.COMPLETE]
    assert [trial.user_attrs[attrs.SOURCE_TRIAL] for trial in complete] == [source]
    if ended_before_kill:
        assert [trial.number for trial in complete] == ended_before_kill and len(full.trials) == 1
        assert complete[0].user_attrs[attrs.EPOCHS_RUN] == killed_at
    else:
        assert complete[0].user_attrs[attrs.RESUMED_FROM_EPOCH] >= killed_at  # continued, not started over
    trained = read_checkpoint(config.paths.trial_dir(source, attrs.FULL_FIDELITY) / "last.pt")
    assert trained["history"][-1]["lr"] == 0.0 and trained["step"] == trained["scheduler"]["lr_lambdas"][0]["total"]
    # The killed final run's trial was failed at once (its process was gone), not after the heartbeat's grace.
    assert "waiting" not in done.stderr.lower()


def test_starts_that_cannot_succeed_are_refused_before_training_and_leave_nothing_behind(tmp_path, capsys):
    path = _study(tmp_path)
    config = load_study_config(path)
    job_dir = config.paths.artifacts_path / "run"

    started = time.monotonic()
    tiny = _run_here(capsys, path, "1s")  # below the fixed costs: refused before the data is even read
    assert tiny.returncode == 1 and "cannot be met" in tiny.stderr and "at least" in tiny.stderr
    assert time.monotonic() - started < 20 and not (job_dir / "state.json").exists()
    # More worker processes than the machine can run (about 250 were seen on 2 cores) are refused, naming the most.
    crowd = _run_here(capsys, path, "60s", 100000)
    most = 4 * len(os.sched_getaffinity(0))
    assert crowd.returncode == 1 and "--workers 100000 is more than this machine can run" in crowd.stderr
    assert f"--workers {most} or fewer" in crowd.stderr and not (job_dir / "state.json").exists()
    short = _run_here(capsys, path, "17s")  # refused by the plan, from this machine's measured speed
    assert short.returncode == 1 and "cannot be met on this machine" in short.stderr and "at least" in short.stderr
    assert not (job_dir / "state.json").exists()  # a refused start does not lock the study to its budget
    # The budget runs from the command's start (main() hands its start to run_job), not from after the imports:
    # a start 45 s ago leaves a 60 s budget too little, and the refusal counts those seconds as preparing.
    with pytest.raises(BudgetError, match=r"preparing took (4[5-9]|5\d) s"):
        run_job(config, 60, started_at=time.monotonic() - 45, progress=False)
    assert not (job_dir / "state.json").exists()

    # A missing test split is found before any training, not after it.
    test_split = Path(config.data.root) / config.data.test_split
    shutil.move(test_split, tmp_path / "test-aside")
    started = time.monotonic()
    missing = _run_here(capsys, path, "60s")
    assert missing.returncode == 1 and config.data.test_split in missing.stderr
    assert time.monotonic() - started < 30 and not (job_dir / "state.json").exists()
    shutil.move(tmp_path / "test-aside", test_split)

    # A state file with the wrong types is named, key and value, rather than a traceback.
    job_dir.mkdir(parents=True, exist_ok=True)
    for broken, named in (({"version": 2, "budget_s": 60}, "another phonetune version"),
                          ({"version": 3, "budget_s": "abc"}, "budget_s"), ([1, 2], "JSON object"),
                          ({"version": 3, "budget_s": 60, "spent_s": -16666667.0}, "spent_s")):
        (job_dir / "state.json").write_text(json.dumps(broken))
        refused = _run_here(capsys, path, "60s")
        assert refused.returncode == 1 and named in refused.stderr and "Traceback" not in refused.stderr
    assert "--fresh" in refused.stderr  # the way out is named; with it the broken state goes (and this budget is
    fresh = _run_here(capsys, path, "17s", 1, "--fresh")  # refused again, leaving nothing)
    assert fresh.returncode == 1 and "cannot be met" in fresh.stderr and not (job_dir / "state.json").exists()

    # A storage that cannot work is refused before any state is written (it was found only after the plan was
    # saved, which then bound the study to that start); the rest of the state checks are in tests/job/test_state.py.
    for storage, named in ((f"sqlite:///{tmp_path / 'no-such-folder' / 'study.db'}", "does not exist"),
                           ("not-a-url", "cannot be parsed")):
        refused = _run_here(capsys, path, "60s", 1, "--set", f'study.storage="{storage}"')
        assert refused.returncode == 1 and named in refused.stderr, refused.stderr[-2000:]
        assert not (job_dir / "state.json").exists() and not (tmp_path / "no-such-folder").exists()

    # Two jobs on one study: the second is refused while the first runs.
    first = subprocess.Popen(_command(path, "60s"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        lock = tmp_path / "study.db-tiny.job-lock"
        assert _wait_for(lambda: lock.is_file() and "pid" in lock.read_text(),
                         60, first)
        second = _run_here(capsys, path, "60s")
        assert second.returncode == 1 and "already being run" in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def test_ctrl_c_in_the_screen_then_a_full_disk_then_a_smaller_budget_ends_inside_it(tmp_path, small_disk):
    """Issue 36, item 5 and issue 37, case 2: a job stopped by Ctrl-C in its screen, then the same command with a
    smaller --budget on a full disk, then again with room: the stop is quick and says how to continue and how to
    start over; the full disk is one named error and the time that start spent is counted although the disk had no
    room for the job's state (it was lost before, and the next start overran by half); the last start replans what
    is left under the new budget and ends inside it."""
    folder, resize = small_disk
    resize("64m")
    path = _study(tmp_path, **CAPPED, **{"study.artifacts_dir": str(folder / "artifacts")})
    config = load_study_config(path)
    state_path = config.paths.artifacts_path / "run" / "state.json"
    first = subprocess.Popen(_command(path, "200s", 2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True, text=True)

    def screen_training() -> bool:
        try:
            return any(trial.state == TrialState.RUNNING for trial in open_study(config).trials)
        except StorageError:
            return False

    if not _wait_for(screen_training, 120, first):
        first.kill()
        out, err = first.communicate()
        pytest.fail(f"the job ended before its screen could be interrupted:\n{out[-2000:]}\n{err[-3000:]}")
    time.sleep(2)
    os.killpg(first.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole foreground group
    interrupted_at = time.monotonic()
    out, err = first.communicate(timeout=90)
    stopped_in = time.monotonic() - interrupted_at
    assert first.returncode == 130, err[-3000:]
    assert stopped_in < 20, f"Ctrl-C took {stopped_in:.0f} s to stop the job"
    last = err.strip().splitlines()[-1]
    assert last.startswith("phonetune run: interrupted; the job's state and the time it spent are kept"), err[-2000:]
    assert f"Continue with the same command: phonetune run --config {path} --budget 200s" in last
    assert f"start over with: phonetune run --config {path} --budget 200s --workers 2 --quiet --fresh" in last
    assert not _workers_of(path), "the interrupted job's workers kept training"
    spent = json.loads(state_path.read_text())["spent_s"]
    planned = json.loads(state_path.read_text())["plan"]
    assert planned["kind"] == "screened" and spent < planned["prepare_s"] + planned["screen_s"]

    budget = 140
    filler = fill_disk(folder)
    started = time.monotonic()
    full = _run(path, f"{budget}s", 2, 300)
    took = time.monotonic() - started
    assert full.returncode == 1, full.stderr[-3000:]
    assert "replanned what is left for --budget 2 min 20 s" in full.stdout + full.stderr, full.stderr[-3000:]
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("phonetune run: error: ") and "is full" in last and "run the same command again" in last
    assert str(folder) in full.stderr and "Traceback" not in full.stderr, full.stderr[-3000:]
    spent_full = json.loads(state_path.read_text())["spent_s"]
    assert spent_full >= spent + took - 5, (spent, took, spent_full)  # saved although the disk was full

    filler.unlink()
    done = _run(path, f"{budget}s", 2, 300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = _summary(done)
    assert spent_full <= summary["spent_s"] <= budget * 1.1, (summary["spent_s"], summary["plan"]["why"])
    plan = summary["plan"]
    assert plan["budget_s"] == budget and "--budget 3 min 20 s -> 2 min 20 s" in plan["why"]
    # The trials already run stay comparable: the trial horizon and the size are the first plan's.
    assert plan["trial_seconds"] == planned["trial_seconds"] and plan["final_params"] == planned["final_params"]
    assert plan["screen_s"] < planned["screen_s"]
    assert Path(summary["submission"]).is_file()


def test_a_dev_file_deleted_between_a_kill_and_the_rerun_is_refused_naming_the_split(tmp_path, capsys):
    """Issue 37, case 6: the screen's scores before the kill were over all of dev; a rerun on a dev with a file less
    would mix them with scores over fewer utterances without a word. It is refused, nothing is changed, and with the
    file back the same command goes on."""
    path = _study(tmp_path)
    config = load_study_config(path)
    state_path = config.paths.artifacts_path / "run" / "state.json"
    first = subprocess.Popen(_command(path, "100s"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    planned = _wait_for(lambda: state_path.is_file() and "plan" in json.loads(state_path.read_text()), 120, first)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert planned, "the job ended before it planned"
    kept = state_path.read_text()
    assert json.loads(kept)["data"]["dev-clean"]["utterances"] >= 2

    dev = Path(config.data.root) / "dev-clean"
    name = sorted((dev / "mfcc").glob("*.npy"))[0].name
    aside = tmp_path / "aside"
    aside.mkdir()
    for folder in ("mfcc", "transcript"):
        shutil.move(dev / folder / name, aside / f"{folder}-{name}")
    before = json.loads(kept)["data"]["dev-clean"]
    refused = _run_here(capsys, path, "100s")
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert (f"the data changed since this job started (dev-clean: {before['utterances']} utterances and "
            f"{before['frames']} frames -> {before['utterances'] - 1} and") in refused.stderr
    assert "Restore the files and run the same command" in refused.stderr and "--fresh" in refused.stderr
    assert state_path.read_text() == kept  # nothing of the job was changed by the refused rerun

    for folder in ("mfcc", "transcript"):
        shutil.move(aside / f"{folder}-{name}", dev / folder / name)
    # The same data again: the check the rerun makes passes.
    check_same_data(json.loads(kept)["data"], data_sizes(config, progress=False), state_path)


def test_ctrl_c_while_the_command_starts_or_prepares_stops_it_within_seconds(tmp_path):
    """Issue 36, item 5: Ctrl-C during preparation took 60-90 s. Started as a script's background job is (SIGINT
    ignored, which the command undoes for itself), interrupted while it imports torch and while it reads the data."""
    path = _study(tmp_path)
    for delay in (1.5, 5.0):
        process = subprocess.Popen(_command(path, "5m"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGINT)
        interrupted_at = time.monotonic()
        try:
            _out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        stopped_in = time.monotonic() - interrupted_at
        # Under `python -m` CPython reports a caught KeyboardInterrupt as a death by SIGINT when it passed through
        # code that an imported module ran with PyRun_String (torch's imports do); the console script exits 130.
        assert process.returncode in (130, -signal.SIGINT), (delay, process.returncode, err[-2000:])
        assert stopped_in < 10, f"Ctrl-C {delay} s after the start took {stopped_in:.0f} s to stop the command"
        last = err.strip().splitlines()[-1]
        assert "interrupted" in last, err[-2000:]
        # Interrupted before its plan was saved, it must not promise a kept state; after, it says what was kept.
        if job_state_path(load_study_config(path)).exists():
            assert "the job's state and the time it spent are kept" in last, last
        elif "while starting" not in last:
            assert "before the job was planned; nothing was kept" in last, last
            assert f"Run it again with: phonetune run --config {path} --budget 5m" in last, last

