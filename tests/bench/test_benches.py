"""Every benchmark runs end to end at a tiny size, so a renamed key or a changed API breaks CI, not the next
measurement. Each prints its figures and ends with ``ratio: X``; the figures themselves are in BENCHMARKS.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from corpus import write_tiny_corpus
from search_study import WARM_STARTS, write_study
from shared import ONE_THREAD_ENV, REPO

pytestmark = pytest.mark.slow


def _bench(script: str, *args: str, timeout: float = 300, ratio: bool = True) -> str:
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], capture_output=True, text=True,
                          timeout=timeout, env=ONE_THREAD_ENV, cwd=REPO, check=False)
    assert done.returncode == 0, f"{script}: {done.stderr[-3000:]}"
    last = done.stdout.strip().splitlines()[-1]
    if ratio:
        assert re.fullmatch(r"ratio: \d+\.\d+", last), f"{script} must end with its ratio, but ended: {last!r}"
    return done.stdout


@pytest.fixture(scope="module")
def small_study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bench")
    corpus = write_tiny_corpus(folder / "data", n_train=80, n_dev=12, n_test=8)
    path = write_study(folder, corpus.root, **{"study.n_trials": 4, "fidelity.full_epochs": 20,
                                               "space.base_width": {"low": 16, "high": 128, "log": True}})
    path.write_text(path.read_text() + WARM_STARTS)
    return path


def test_quality_bench_runs_every_arm_and_the_budget_curve_draws_them(tmp_path, small_study):
    data = small_study.parent / "data"
    # The job needs about 30 s even on a tiny corpus (starting Python and a worker, timing the machine); the other
    # arms only train until their deadline, so a short one tests them as well.
    written = []
    for arms, budget in (("a", "32s"), ("b,c", "16s")):
        written.append(tmp_path / f"{arms}.json")
        output = _bench("quality.py", "--config", str(small_study), "--data", str(data), "--budget", budget,
                        "--seeds", "1", "--arms", arms, "--workers", "1", "--json", str(written[-1]),
                        "--keep", str(tmp_path / "kept"), timeout=400, ratio=False)
        for arm in arms.split(","):
            found = re.search(rf"^arm \({arm}\) seed 0: test accuracy ([01]\.\d{{4}})", output, re.MULTILINE)
            # Every arm learns this tiny corpus (above 0.98 here): an arm that priced its time so badly that it
            # trained a single step (arm (b) once did, guessing a 200k-frame test split) scores near chance.
            assert found and float(found.group(1)) > 0.5, output
    # --keep: arm (a)'s job left its sheets, report and summary for the record, past its temporary folder.
    kept = tmp_path / "kept" / "a-0" / "artifacts"
    assert (kept / "run" / "summary.json").is_file() and (kept / "report.html").is_file()
    assert (kept / "ablation_sheet.csv").is_file() and not list(kept.rglob("*.pt"))
    # Arm (a)'s plan goes into its JSON; the curve draws each arm's budgets and names the plan of each point.
    figure = tmp_path / "curve.html"
    output = _bench("budget_curve.py", "--out", str(figure), *map(str, written), ratio=False)
    assert figure.is_file() and "plotly" in figure.read_text()[:5000].lower(), output
    assert re.search(r"^\| 32 s \| \(a\) \| [01]\.\d{4} \|.*(direct|screened)", output, re.MULTILINE), output
    assert re.search(r"^\| 16 s \| \(b\) \| [01]\.\d{4} \|", output, re.MULTILINE), output


def test_the_decode_bench_prints_its_grid_and_the_jobs_pick(tmp_path, small_study):
    data = small_study.parent / "data"
    out = tmp_path / "run"
    starter = str(REPO / "studies" / "starter.toml")
    assert subprocess.run([sys.executable, "-m", "phonetune.cli", "train", "--config", starter, "--data", str(data),
                           "--out", str(out), "--epochs", "1", "--set", "train.batch_size=64",
                           "--set", 'train.device="cpu"', "--quiet"], env=ONE_THREAD_ENV, cwd=REPO, check=False,
                          capture_output=True, timeout=300).returncode == 0
    output = _bench("decode.py", "--checkpoint", str(out / "best.pt"), "--data", str(data))
    assert output.count("1.5/") == 3 and output.count("0.75: ") == 4, output
    assert "the job's grid (4 points) picks" in output, output


def test_fidelity_bench_trains_every_screened_trial_at_the_final_horizon(small_study):
    # A size cap the tiny corpus saturates in seconds, so that the plan screens (a direct plan is refused by name).
    output = _bench("fidelity.py", "--config", str(small_study), "--data", str(small_study.parent / "data"),
                    "--budget", "90s", "--trials", "3", "--workers", "1", "--set", "space.base_width.high=32")
    assert "Spearman screen vs final over K=3" in output and "screen:    " in output, output


def test_the_quick_benchmarks_run(tmp_path, small_study):
    _bench("trainer.py", "--frames", "4000", "--epochs", "1", "--base-width", "64", "--batch-size", "256")
    _bench("loader.py", "--data", str(small_study.parent / "data"))
    _bench("storage.py", "--workers", "2", "--trials-per-worker", "3")
    _bench("refit.py", "--config", str(small_study), "--data", str(small_study.parent / "data"), "--budget", "60s",
           "--probe-seconds", "0.2", "--refit-seconds", "0.3")
    _bench("step.py", "--base-width", "64", "--context-frames", "2", "--batch-size", "128", "--steps", "2",
           "--blocks", "1")


def test_the_pruning_bench_runs(small_study):
    output = _bench("search.py", "--config", str(small_study), "--data", str(small_study.parent / "data"),
                    "--trials", "2", "--epochs", "1")
    assert "trial-epochs" in output, output


def test_the_kill_matrix_kills_a_job_and_its_rerun_holds_the_budget(small_study):
    # The cheapest phase to reach: the kill lands after the final model is chosen, the rerun only writes the outputs.
    # 40 s: the tiny corpus's job needs about 30 s on this machine (the plan refuses less and says so).
    # Ctrl-C pressed twice (SIGINT to the job's process group, as a terminal sends it); SIGKILL in every phase is
    # tests/scenarios/test_run_job.py's.
    output = _bench("kill_matrix.py", "--config", str(small_study), "--data", str(small_study.parent / "data"),
                    "--budget", "40s", "--workers", "1", "--phases", "outputs", "--signal", "int", "--repeat", "2",
                    timeout=300)
    row = re.search(r"^outputs +\d+s +(\d+)s .* params, test [01]\.\d+", output, re.MULTILINE)
    assert row, output
    assert "SILENT" not in row.group(0), output  # an overrun is said
    assert int(row.group(1)) <= 15, f"the interrupted job took {row.group(1)} s to exit:\n{output}"
    assert float(output.strip().splitlines()[-1].split()[-1]) <= 1.10, output


def test_the_horizon_bench_compares_one_change_at_one_length(small_study):
    output = _bench("horizon.py", "--config", str(small_study), "--data", str(small_study.parent / "data"),
                    "--cap", "20000", "--epochs", "2", "--set", "context_frames=1")
    lines = output.strip().splitlines()
    assert lines[0].startswith("expert : ") and lines[1].startswith("changed {'context_frames': 1}: "), output
    assert all(f"{float(value):.4f}" == value for value in re.findall(r"test (\d\.\d{4})", output)), output
