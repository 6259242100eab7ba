"""`phonetune run --budget`: the whole job on a tiny corpus, within its budget, and a killed job continued."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from corpus import write_tiny_corpus
from optuna.trial import TrialState
from search_study import write_study

from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config
from phonetune.search.space import warm_start_params
from phonetune.search.study import open_study

pytestmark = pytest.mark.slow

EXPERT = """
[[warm_start]]
name = "expert"
hidden_layers = 1
base_width = 48
activation = "tanh"
context_frames = 2
lr = 5e-3
batch_size = 64
"""


def _study(tmp_path: Path) -> Path:
    corpus = write_tiny_corpus(tmp_path / "data", n_train=40, n_dev=8, n_test=6)
    path = write_study(tmp_path, corpus.root, **{"study.n_trials": 50, "sampler.kind": "tpe",
                                                  "sampler.n_startup_trials": 2, "fidelity.train_fraction": 0.5})
    path.write_text(path.read_text() + EXPERT)
    return path


def _command(path: Path, budget: str) -> list[str]:
    return [sys.executable, "-m", "phonetune.cli", "run", "--config", str(path), "--budget", budget,
            "--workers", "1", "--quiet"]


def test_run_ends_within_its_budget_with_warm_start_submission_and_summary(tmp_path):
    path = _study(tmp_path)
    started = time.monotonic()
    done = subprocess.run(_command(path, "90s"), capture_output=True, text=True, timeout=300, check=False)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert wall <= 99, f"a 90 s budget took {wall:.0f} s"
    lines = done.stdout.strip().splitlines()
    assert lines[-2].startswith("submission: ") and lines[-1].startswith("summary: ")
    submission, summary_path = Path(lines[-2].split(": ", 1)[1]), Path(lines[-1].split(": ", 1)[1])
    assert submission.read_text().splitlines()[0] == "id,label"
    summary = json.loads(summary_path.read_text())
    assert summary["spent_s"] <= 90 * 1.1
    assert 0 < summary["test_accuracy"] <= 1
    assert summary["plan"]["search_s"] > 0 and summary["final_runs"]["sources"]
    # The sheet ends with the final model's row: its members, parameters and test accuracy (4 significant digits).
    with open(summary["sheet"], newline="") as handle:
        final_row = list(csv.DictReader(handle))[-1]
    model = summary["final_model"]
    assert final_row["state"] == "FINAL" and final_row["trained_on"] == "all"
    assert final_row["promoted_from"] == "+".join(str(member) for member in model["members"])
    assert int(final_row["param_count"]) == model["param_count"]
    assert float(final_row["test_accuracy"]) == pytest.approx(summary["test_accuracy"], rel=5e-4)
    config = load_study_config(path)
    study = open_study(config)
    warm = [trial for trial in study.trials if trial.user_attrs.get(attrs.WARM_START) == "expert"]
    assert len(warm) == 1 and warm[0].number == 0
    capped = load_study_config(path, [f"study.param_budget={summary['plan']['search_cap']}"])
    assert warm[0].params == warm_start_params(capped, capped.warm_start[0])
    assert warm[0].params["activation"] == "tanh" and warm[0].params["context_frames"] == 2


def test_killed_run_continues_without_retraining_finished_work(tmp_path):
    path = _study(tmp_path)
    config = load_study_config(path)
    process = subprocess.Popen(_command(path, "120s"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    state_path = config.paths.artifacts_path / "run" / "state.json"
    first_final = None
    deadline = time.monotonic() + 200
    # Kill once the first final run has written its first epoch checkpoint: the search is over by then.
    while time.monotonic() < deadline and process.poll() is None:
        if state_path.is_file():
            state = json.loads(state_path.read_text())
            if "final_runs" in state:
                # The best source trains last, so any source with a checkpoint is the run in progress.
                first_final = next((source for source in state["final_runs"]["sources"]
                                    if (config.paths.trial_dir(source, attrs.FULL_FIDELITY) / "last.pt").exists()), None)
                if first_final is not None:
                    break
        time.sleep(0.1)
    assert process.poll() is None and first_final is not None, "the job ended before it could be killed"
    planned_sources = state["final_runs"]["sources"]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    search_before = {t.number: (t.state, t.value) for t in open_study(config).trials if t.state.is_finished()}

    done = subprocess.run(_command(path, "120s"), capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    search_after = {t.number: (t.state, t.value) for t in open_study(config).trials if t.state.is_finished()}
    assert search_after == search_before  # the search was done: nothing searched again, nothing changed
    full = open_study(config, attrs.FULL_FIDELITY)
    complete = [t for t in full.trials if t.state == TrialState.COMPLETE]
    sources = [t.user_attrs[attrs.SOURCE_TRIAL] for t in complete]
    assert len(sources) == len(set(sources))  # every final run trained once
    resumed = next(t for t in complete if t.user_attrs[attrs.SOURCE_TRIAL] == first_final)
    assert resumed.user_attrs[attrs.RESUMED_FROM_EPOCH] >= 1  # continued from the killed run's checkpoint
    summary = json.loads(Path(done.stdout.strip().splitlines()[-1].split(": ", 1)[1]).read_text())
    assert summary["test_accuracy"] is not None
    # The best candidate trained last, for the epochs recorded before it started (the time left then).
    best = planned_sources[0]
    assert summary["final_runs"]["sources"][0] == best
    best_run = next(t for t in complete if t.user_attrs[attrs.SOURCE_TRIAL] == best)
    planned_runs = [t for t in complete if t.user_attrs[attrs.SOURCE_TRIAL] in planned_sources]
    assert best_run.datetime_start == max(t.datetime_start for t in planned_runs)
    assert best_run.user_attrs[attrs.EPOCHS_RUN] == int(summary["final_runs"]["epochs_of"][str(best)])
