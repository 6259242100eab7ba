"""Accuracy at an equal wall-clock budget: ``phonetune run`` against the expert recipe alone and a plain Optuna script.

Three arms, each given the same budget B on this machine, each scored on the demo corpus's held-apart test labels:

(a) ``phonetune run --budget B``: planner, warm-started search with pruning, final runs, ensemble.
(b) the study's ``expert`` warm-start recipe alone (as written, uncapped), trained on all the training data for as
    many epochs as fit B (epochs chosen from this machine's measured speed, as a person sizing one run would).
(c) a plain Optuna script: TPE over the same space under the study's parameter budget, no pruning, promotion or warm
    start; each trial trains on all the training data for a fixed 2 epochs; the best dev trial is the answer.

Arms (b) and (c) stop an epoch early rather than overrun B; every arm's own wall time is printed. The last line is
``ratio: X`` = arm (a)'s mean test accuracy / the best other arm's mean.

Usage: python bench/quality.py [--data data/demo] [--budget 10m] [--seeds 2 | --seed-list 0,1] [--arms a,b,c]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from phonetune.errors import PhonetuneError
from phonetune.job.clock import format_seconds, parse_budget
from phonetune.job.planner import run_seconds
from phonetune.model import count_params
from phonetune.model.inference import predict_checkpoint
from phonetune.model.run_files import BEST_CHECKPOINT
from phonetune.model.scoring import score_submission
from phonetune.model.speed_probe import measure_speed
from phonetune.model.trainer import Trainer
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig, load_study_config
from phonetune.search.runner import load_fidelity_data
from phonetune.search.space import suggest_run_config, warm_start_params

REPO = Path(__file__).resolve().parents[1]
PLAIN_EPOCHS = 2  # arm (c): every trial trains all the data for this many epochs
PREDICT_RESERVE_S = 15.0  # arms (b) and (c): predicting and scoring the test split after training


class DeadlineReached(Exception):
    """Raised from an epoch callback when the next epoch would end past the deadline."""


def stop_before(deadline: float):
    """An epoch callback that ends training when another epoch like the last one would overrun ``deadline``."""

    def callback(metrics) -> None:
        if time.monotonic() + metrics.seconds > deadline:
            raise DeadlineReached(f"stopped after epoch {metrics.epoch}: the next would end past the budget")

    return callback


def test_accuracy(checkpoint: Path, config: StudyConfig, out: Path) -> float:
    data = config.data
    submission, _frames = predict_checkpoint(checkpoint, data.root, data.test_split, out, progress=False)
    return score_submission(submission, Path(data.root) / f"{data.test_split}-labels", data.phonemes).accuracy


def train_until(run_config, out_dir: Path, data, deadline: float) -> None:
    trainer = Trainer(run_config, out_dir, data=data, epoch_callback=stop_before(deadline), progress=False,
                      curves=False)
    try:
        trainer.setup()
        trainer.train()
    except DeadlineReached as stop:
        logging.getLogger("bench").info("%s", stop)
    finally:
        trainer.cleanup()


def arm_phonetune(args, config_path: str, overrides: list[str], seed: int, folder: Path, budget_s: float) -> dict:
    study_overrides = [
        *overrides,
        f'study.name="quality-{seed}"',
        f'study.storage="sqlite:///{folder / "study.db"}"',
        f'study.artifacts_dir="{folder / "artifacts"}"',
        f"sampler.seed={seed}",
        f"train.seed={seed}",
    ]
    command = [sys.executable, "-m", "phonetune.cli", "run", "--config", config_path, "--budget",
               f"{budget_s:.0f}s", "--workers", str(args.workers), "--quiet"]
    for override in study_overrides:
        command += ["--set", override]
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(f"phonetune run failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    summary = json.loads((folder / "artifacts" / "run" / "summary.json").read_text())
    model = summary["final_model"]
    final = summary["final_runs"]
    epochs = {source: final.get("epochs_of", {}).get(str(source), final["epochs"]) for source in final["sources"]}
    return {"test_accuracy": summary["test_accuracy"], "wall_s": wall,
            "detail": f"{model['chosen']} of trials {model['members']}, {model['param_count']:,} params, "
                      f"{summary['search_trials']} search trials, final runs (trial: epochs) {epochs}",
            "job_lines": [line for line in completed.stdout.splitlines()
                          if line.startswith(("plan:", "search:", "final runs:", "final model:"))]}


def arm_expert(config: StudyConfig, seed: int, folder: Path, budget_s: float) -> dict:
    started = time.monotonic()
    deadline = started + budget_s
    expert = next((entry for entry in config.warm_start if entry.name == "expert"), None)
    if expert is None:
        raise PhonetuneError(f"{config.source} must have a [[warm_start]] table named 'expert' for arm (b)")
    data = load_fidelity_data(config, attrs.FULL_FIDELITY)
    # The recipe as written; what it leaves open (unused when masking is off, say) is drawn as a study would.
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    study.enqueue_trial(warm_start_params(config, expert))
    run_config = suggest_run_config(study.ask(), config, attrs.FULL_FIDELITY)
    speed = measure_speed(config.train.device)
    params = count_params(run_config.model, run_config.io)
    left = deadline - time.monotonic() - PREDICT_RESERVE_S
    epoch_s = run_seconds(speed, params, 1, data.train.num_frames, data.dev.num_frames)
    epochs = max(1, int(left // epoch_s))
    run_config = dataclasses.replace(run_config, train=dataclasses.replace(run_config.train, epochs=epochs, seed=seed))
    train_until(run_config, folder / "expert", data, deadline - PREDICT_RESERVE_S)
    accuracy = test_accuracy(folder / "expert" / BEST_CHECKPOINT, config, folder / "expert" / "submission.csv")
    return {"test_accuracy": accuracy, "wall_s": time.monotonic() - started,
            "detail": f"{params:,} params, {epochs} epochs planned"}


def arm_plain_optuna(config: StudyConfig, seed: int, folder: Path, budget_s: float) -> dict:
    started = time.monotonic()
    deadline = started + budget_s - PREDICT_RESERVE_S
    data = load_fidelity_data(config, attrs.FULL_FIDELITY)
    plain = load_study_config(config.source, [*config.overrides, f"fidelity.full_epochs={PLAIN_EPOCHS}",
                                              "fidelity.full_train_fraction=1.0", f"train.seed={seed}"])

    speed = measure_speed(config.train.device)

    def objective(trial: optuna.Trial) -> float:
        run_config = suggest_run_config(trial, plain, attrs.FULL_FIDELITY)
        epoch_s = run_seconds(speed, count_params(run_config.model, run_config.io), 1, data.train.num_frames,
                              data.dev.num_frames)
        if time.monotonic() + epoch_s > deadline:
            # Not even one epoch of this draw fits: the script would overrun the budget, so it stops here.
            trial.study.stop()
            raise optuna.TrialPruned("no time left for one epoch")
        out_dir = folder / "plain" / str(trial.number)
        train_until(run_config, out_dir, data, deadline)
        metrics = json.loads((out_dir / "metrics.json").read_text())
        return float(metrics["best_dev_acc"])

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=max(1.0, deadline - time.monotonic()), catch=(DeadlineReached,))
    finished = [trial for trial in study.trials if trial.value is not None]
    best = max(finished, key=lambda trial: trial.value)
    checkpoint = folder / "plain" / str(best.number) / BEST_CHECKPOINT
    accuracy = test_accuracy(checkpoint, config, folder / "plain" / "submission.csv")
    return {"test_accuracy": accuracy, "wall_s": time.monotonic() - started,
            "detail": f"{len(finished)} trials, best trial {best.number} "
                      f"({best.user_attrs.get(attrs.PARAM_COUNT, 0):,} params)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "studies" / "demo.toml"))
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1")
    parser.add_argument("--seed-list", default="", help="these seeds instead, e.g. 1 or 0,2 (to complete a run)")
    parser.add_argument("--workers", type=int, default=2, help="search workers of arm (a)")
    parser.add_argument("--arms", default="a,b,c")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget_s = parse_budget(args.budget)
    data_root = str(Path(args.data).resolve())
    overrides = [f'data.root="{data_root}"']
    config = load_study_config(args.config, overrides)
    arms = [arm.strip() for arm in args.arms.split(",")]
    seeds = [int(seed) for seed in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
    print(f"budget {format_seconds(budget_s)} per arm, data {data_root}, seeds {seeds}, arms {arms}", flush=True)
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    for seed in seeds:
        for arm in arms:
            with tempfile.TemporaryDirectory(prefix=f"quality-{arm}-{seed}-") as tmp:
                folder = Path(tmp)
                if arm == "a":
                    row = arm_phonetune(args, args.config, overrides, seed, folder, budget_s)
                elif arm == "b":
                    row = arm_expert(config, seed, folder, budget_s)
                else:
                    row = arm_plain_optuna(config, seed, folder, budget_s)
            results[arm].append(row)
            print(f"arm ({arm}) seed {seed}: test accuracy {row['test_accuracy']:.4f} in "
                  f"{format_seconds(row['wall_s'])} ({row['detail']})", flush=True)
    means = {arm: statistics.fmean(row["test_accuracy"] for row in rows) for arm, rows in results.items()}
    for arm, mean in means.items():
        print(f"arm ({arm}) mean test accuracy {mean:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"budget_s": budget_s, "results": results, "means": means}, indent=1))
    others = [mean for arm, mean in means.items() if arm != "a"]
    if "a" in means and others:
        print(f"ratio: {means['a'] / max(others):.4f}")


if __name__ == "__main__":
    main()
