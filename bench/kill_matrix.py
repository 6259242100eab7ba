"""`phonetune run` stopped in every phase: SIGKILL (or Ctrl-C) per phase, then the same command, and what the budget
shows.

For each phase (preparing, the screen, the final run, the final model and outputs) a fresh job of the study is
started with ``--budget`` and stopped once it is in that phase: SIGKILL to its whole process group, or with
``--signal int`` a terminal's Ctrl-C (SIGINT to the group), ``--repeat`` times a third of a second apart (a user
pressing it again); ``--hog`` keeps a busy process beside the whole row. Then the same command runs until it finishes.
Printed per phase: when it was stopped, how long the stopped command took to exit, the total wall time of both
invocations, the ``spent_s`` the job recorded, whether the rerun said an overrun (``said``; ``SILENT`` when it did
not), the final model and its test accuracy. The budget holds when every
``spent_s`` is within it (plus the time a kill costs: work since the last checkpoint is done again). Last line:

    ratio: the largest spent_s / the budget   (at most 1.10 is the target)

Usage: python bench/kill_matrix.py --config studies/demo.toml --data data/demo --budget 5m [--workers 2]
       [--signal int --repeat 3 --hog]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from phonetune.job.clock import parse_budget
from phonetune.search.config import load_study_config
from phonetune.search.study import open_study

REPO = Path(__file__).resolve().parents[1]
PHASES = ("preparing", "screen", "final run", "outputs")


def _phase_reached(phase: str, config, state_path: Path, started: float) -> bool:
    state = json.loads(state_path.read_text()) if state_path.is_file() else None
    if phase == "preparing":
        return time.monotonic() - started > 3 and state is None
    if state is None:
        return False
    if phase == "screen":
        try:
            trials = open_study(config).trials
        except Exception:  # the study is created a moment after the plan
            return False
        return any(trial.intermediate_values and not trial.state.is_finished() for trial in trials)
    if phase == "final run":
        final = state.get("final") or {}
        return "source" in final and (config.paths.artifacts_path / "full" / str(final["source"]) / "last.pt").is_file()
    return "final_model" in state.get("done", []) or "final" in state.get("done", [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "studies" / "demo.toml"))
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--signal", choices=("kill", "int"), default="kill",
                        help="SIGKILL, or SIGINT as a terminal's Ctrl-C sends it")
    parser.add_argument("--repeat", type=int, default=1, help="signals sent, a third of a second apart")
    parser.add_argument("--hog", action="store_true", help="a busy process beside the whole row")
    args = parser.parse_args()
    budget_s = parse_budget(args.budget)
    number = signal.SIGKILL if args.signal == "kill" else signal.SIGINT
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    try:
        worst = _rows(args, budget_s, number)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    print(f"ratio: {worst:.4f}")


def _rows(args: argparse.Namespace, budget_s: float, number: int) -> float:
    worst = 0.0
    print(f"{'stopped in':<10} {'at':>6} {'exit in':>8} {'both runs':>10} {'spent_s':>8} {'overrun':>8}  final model")
    for phase in args.phases.split(","):
        with tempfile.TemporaryDirectory(prefix="kills-") as tmp:
            folder = Path(tmp)
            overrides = [f'data.root="{Path(args.data).resolve()}"', 'study.name="kills"',
                         f'study.storage="sqlite:///{folder / "study.db"}"',
                         f'study.artifacts_dir="{folder / "artifacts"}"']
            command = [sys.executable, "-m", "phonetune.cli", "run", "--config", args.config, "--budget",
                       f"{budget_s:.0f}s", "--workers", str(args.workers), "--quiet"]
            for override in overrides:
                command += ["--set", override]
            config = load_study_config(args.config, overrides)
            state_path = config.paths.artifacts_path / "run" / "state.json"
            started = time.monotonic()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
            while process.poll() is None and not _phase_reached(phase, config, state_path, started):
                time.sleep(0.2)
            killed_at = time.monotonic() - started
            for _ in range(args.repeat):
                if process.poll() is None:
                    os.killpg(process.pid, number)
                    time.sleep(1 / 3)
            process.wait()
            exited_in = time.monotonic() - started - killed_at
            again = subprocess.run(command, capture_output=True, text=True, check=False)
            wall = time.monotonic() - started
            if again.returncode != 0:
                print(f"{phase:<10} {killed_at:>5.0f}s {exited_in:>7.0f}s {wall:>9.0f}s {'-':>8}  failed: "
                      f"{again.stderr[-500:]}")
                worst = float("inf")
                continue
            summary = json.loads((config.paths.artifacts_path / "run" / "summary.json").read_text())
            model = summary["final_model"]
            worst = max(worst, summary["spent_s"] / budget_s)
            # An overrun must be said by the rerun: before it starts its last step, and when it ends.
            said = ("said" if "past its --budget" in again.stderr else "SILENT") if summary["spent_s"] > budget_s + 1 \
                else "-"
            print(f"{phase:<10} {killed_at:>5.0f}s {exited_in:>7.0f}s {wall:>9.0f}s {summary['spent_s']:>7.0f}s "
                  f"{said:>8}  "
                  f"{model['chosen']} of "
                  f"trials {model['members']}, {model['param_count']:,} params, test {summary['test_accuracy']}",
                  flush=True)
    return worst


if __name__ == "__main__":
    main()
