"""Accuracy at an equal wall-clock budget: ``phonetune run`` against the expert warm start alone and a plain Optuna script.

Three arms, each given the same budget B on this machine, each scored on the corpus's held-apart test labels:

(a) ``phonetune run --budget B``: the plan (direct, or a screen of whole runs at the size cap followed by the
    winner's final run), scored by its submission, each frame's argmax (the default ``[decode] mode``); the test
    accuracy of the sequence decode written beside it is printed after.
(b) the study's ``expert`` warm start alone, as written (its own context and optimizer; its width capped by the
    study's ``param_limit`` exactly as a sampled trial's is, so under ``--set study.param_limit=1000000`` it is the
    expert resized to the cap), at its strongest for the budget as a careful person would run it: all the training
    data, its own batch size, a schedule that ends at the deadline (warm-up, then the learning rate falling linearly
    to zero at the last step the time buys, priced from the warm start's own measured step time) and a weight average
    (the same trainer as phonetune's final runs). Importing, loading the data and predicting are inside B. Scored
    by its argmax, as a student's own script gives it; after its time, what the job's decode would make of its
    model is printed for the record (both arms' decoded labels, for the reader to compare the same way).
(c) a plain Optuna script: TPE over the same space under the study's parameter budget, no pruning, screening or
    warm start; each trial trains on all the training data for a fixed 2 epochs; the best dev trial is the answer.

Every arm's own wall time is printed. The last line is ``ratio: X`` = arm (a)'s mean test accuracy / the best other
arm's mean, every arm by its argmax; the line before it, the same of the decoded labels where both were measured.
Arms (b) and (c) do not use the job's code, so one measurement of them serves later changes of the job.

Usage: python bench/quality.py [--data data/demo] [--budget 10m] [--seeds 2 | --seed-list 0,1] [--arms a,b,c]
                               [--set study.param_limit=1000000] [--json out.json]
"""

from __future__ import annotations

import time

# Each arm's budget starts when a script of its own would: arm (a)'s `phonetune run` pays for importing torch and
# the rest inside its budget, so arms (b) and (c), run in this process, are charged what these imports took.
IMPORTS_STARTED = time.monotonic()

import argparse
import dataclasses
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

from phonetune.data_pipeline.load import load_split
from phonetune.errors import PhonetuneError
from phonetune.job.clock import format_seconds, parse_budget
from phonetune.model import count_params
from phonetune.model.deadline import Deadline
from phonetune.model.ensemble import load_members, members_probabilities
from phonetune.model.inference import load_checkpoint_split, predict_checkpoint
from phonetune.model.run_files import BEST_CHECKPOINT
from phonetune.model.scoring import read_true_labels, score_submission
from phonetune.model.speed_probe import measure_run_step_seconds, measure_speed
from phonetune.model.trainer import Trainer
from phonetune.search import attributes as attrs
from phonetune.search.config import DecodeConfig, StudyConfig, load_study_config
from phonetune.search.final_model import decode_test_labels
from phonetune.search.runner import load_fidelity_data
from phonetune.search.space import suggest_run_config, warm_start_params

REPO = Path(__file__).resolve().parents[1]
PLAIN_EPOCHS = 2  # arm (c): every trial trains all the data for this many epochs
# Arms (b) and (c): writing and scoring the submission after training (about 1 s on this machine) and slack, as
# the job keeps (`job.planner.outputs_seconds`: 5 s and 0.5% of the budget); predicting is priced on top.
PREDICT_RESERVE_S = 5.0
EVALUATIONS = 8  # arm (b): dev evaluations along its run
MIN_STEPS = 50  # arm (b): fewer is no measurement of the warm start (the job refuses a final run this short too)


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
    plan, screen, final = summary["plan"], summary["screen"], summary["final_run"]
    model = summary["final_model"]
    winner = screen["winner"]
    warm = ", ".join(f"{name} {item['screen_accuracy']:.4f}" for name, item in screen["warm_starts"].items()
                        if item["screen_accuracy"] is not None)
    if plan["kind"] == "direct":
        how = f"direct plan: {plan['final_params']:,} params planned for {plan['final_epochs']:.1f} epochs"
    else:
        how = (f"screened plan: {plan['trials']:.0f} trials of {plan['trial_seconds']:.0f} s in {plan['screen_s']:.0f} s, "
               f"final {plan['final_params']:,} params for {plan['final_epochs']:.1f} epochs; "
               f"{screen['complete_trials']} complete of {screen['trials']} trials; winner trial {winner['trial']} "
               f"({winner['from']}) {winner['screen_accuracy'] or 0:.4f} vs {warm}")
    argmax = model.get("test_argmax_accuracy")
    if argmax is not None and abs(argmax - summary["test_accuracy"]) > 1e-9:
        raise RuntimeError(f"arm (a)'s submission is not its argmax ({summary['test_accuracy']} against {argmax}): "
                           "run it with [decode] mode = \"argmax\" so that both arms are scored the same way")
    return {"test_accuracy": summary["test_accuracy"], "wall_s": wall, "spent_s": summary["spent_s"],
            "decoded_test_accuracy": model.get("test_decoded_accuracy"),
            "detail": f"{how}; final {final['param_count']:,} params, dev {final['dev_accuracy']:.4f}",
            "summary": {key: summary[key] for key in ("plan", "screen", "final_run", "final_model")}}


def arm_expert(config: StudyConfig, seed: int, folder: Path, budget_s: float, imports_s: float) -> dict:
    started = time.monotonic() - imports_s
    deadline = started + budget_s
    expert = next((entry for entry in config.warm_start if entry.name == "expert"), None)
    if expert is None:
        raise PhonetuneError(f"{config.source} must have a [[warm_start]] table named 'expert' for arm (b)")
    data = load_fidelity_data(config, attrs.FULL_FIDELITY)
    test_frames = load_split(config.data, config.data.test_split).num_frames
    # The warm start as written; what it leaves open (unused when masking is off, say) is drawn as a study would.
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    study.enqueue_trial(warm_start_params(config, expert))
    run_config = suggest_run_config(study.ask(), config, attrs.FULL_FIDELITY)
    params = count_params(run_config.model, run_config.io)
    step_s = measure_run_step_seconds(run_config, data.train)
    speed = measure_speed(config.train.device, split=data.train)
    # The time left after predicting test (and the evaluations on dev along the way) buys this many steps.
    predicting = speed.predict_seconds(params, data.dev.num_frames * (1 + EVALUATIONS) + test_frames)
    seconds = deadline - time.monotonic() - predicting - PREDICT_RESERVE_S
    steps = int(seconds / step_s)
    if steps < MIN_STEPS:
        raise SystemExit(f"arm (b): {format_seconds(budget_s)} leaves {max(0.0, seconds):.1f} s to train after "
                         f"importing, loading, timing and predicting, {max(0, steps)} steps of "
                         f"{1000 * step_s:.1f} ms; give a larger --budget")
    train = dataclasses.replace(
        run_config.train, seed=seed, scheduler="linear", total_steps=steps, warmup_fraction=0.05,
        eval_every_steps=max(1, steps // EVALUATIONS), ema_decay=1.0 - 1.0 / max(10, steps // 50),
    )
    run_config = dataclasses.replace(run_config, train=train)
    # The step count above is a first guess from one probe; as in the job's final run, the end is replanned from the
    # step times measured along the way, so a load that comes later neither pushes the arm past its budget (seed 1
    # on the second corpus once ran 66 s over from a probe 10% fast) nor ends it early. The keeper prices the
    # evaluations still to come itself, so the reserve after the last step is predicting test alone.
    after_training = speed.predict_seconds(params, test_frames)
    run_deadline = Deadline(at=deadline - PREDICT_RESERVE_S, reserve_steps=after_training / step_s)
    trainer = Trainer(run_config, folder / "expert", data=data, progress=False, curves=False, deadline=run_deadline)
    try:
        trainer.setup()
        trainer.train()
        trained = trainer.step
    finally:
        trainer.cleanup()
    accuracy = test_accuracy(folder / "expert" / BEST_CHECKPOINT, config, folder / "expert" / "submission.csv")
    wall = time.monotonic() - started
    return {"test_accuracy": accuracy, "wall_s": wall,
            "decoded_test_accuracy": decoded_test_accuracy(folder / "expert" / BEST_CHECKPOINT, config),
            "detail": f"{params:,} params, {trained:,} steps of batch {run_config.train.batch_size} "
                      f"({trained * run_config.train.batch_size / data.train.num_frames:.2f} epochs; {steps:,} "
                      f"planned from {1000 * step_s:.1f} ms a step measured)"}


def decoded_test_accuracy(checkpoint: Path, config: StudyConfig) -> float:
    """What the job's decode (model/decode.py, fit on dev) would make of this arm's model on test: measured after
    the arm's time, for the record, not its score (arm (b) is the warm start as a student runs it, by argmax)."""
    members = load_members([checkpoint])
    data = config.data
    dev = load_checkpoint_split(members[0].run_config, members[0].payload, data.root, data.dev_split, progress=False)
    _, labels = decode_test_labels(dataclasses.replace(config, decode=DecodeConfig(mode="viterbi")), members[0],
                                   members_probabilities(members, data.root, data.dev_split), dev.labels, dev.offsets,
                                   members_probabilities(members, data.root, data.test_split))
    truth = read_true_labels(Path(data.root) / f"{data.test_split}-labels", data.phonemes)
    return float((labels == truth).mean())


def arm_plain_optuna(config: StudyConfig, seed: int, folder: Path, budget_s: float, imports_s: float) -> dict:
    started = time.monotonic() - imports_s
    deadline = started + budget_s - PREDICT_RESERVE_S
    data = load_fidelity_data(config, attrs.FULL_FIDELITY)
    plain = load_study_config(config.source, [*config.overrides, f"fidelity.full_epochs={PLAIN_EPOCHS}",
                                              "fidelity.full_train_fraction=1.0", f"train.seed={seed}"])

    speed = measure_speed(config.train.device, split=data.train)

    def objective(trial: optuna.Trial) -> float:
        run_config = suggest_run_config(trial, plain, attrs.FULL_FIDELITY)
        epoch_s = speed.epoch_seconds(count_params(run_config.model, run_config.io), data.train.num_frames,
                                      data.dev.num_frames, run_config.train.batch_size)
        if time.monotonic() + epoch_s > deadline:
            # Not even one epoch of this draw fits: the script would overrun the budget, so it stops here.
            trial.study.stop()
            raise optuna.TrialPruned("no time left for one epoch")
        out_dir = folder / "plain" / str(trial.number)
        train_until(run_config, out_dir, data, deadline)
        metrics = json.loads((out_dir / "metrics.json").read_text())
        return float(metrics["dev_accuracy"])

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=max(1.0, deadline - time.monotonic()), catch=(DeadlineReached,))
    finished = [trial for trial in study.trials if trial.value is not None]
    if not finished:
        raise SystemExit(f"arm (c): not one epoch of the script's first draw fits in {format_seconds(budget_s)} on "
                         "this machine; give a larger --budget")
    best = max(finished, key=lambda trial: trial.value)
    checkpoint = folder / "plain" / str(best.number) / BEST_CHECKPOINT
    accuracy = test_accuracy(checkpoint, config, folder / "plain" / "submission.csv")
    return {"test_accuracy": accuracy, "wall_s": time.monotonic() - started,
            "detail": f"{len(finished)} trials, best trial {best.number} "
                      f"({best.user_attrs.get(attrs.PARAM_COUNT, 0):,} params)"}


# What an arm leaves that is worth keeping for the record (not its checkpoints or caches).
KEPT_SUFFIXES = (".csv", ".html", ".json", ".db", ".toml")
KEPT_MAX_BYTES = 20_000_000


def keep_outputs(folder: Path, into: Path) -> None:
    """Copy the arm's small outputs from its temporary ``folder`` to ``into``, keeping their relative paths."""
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in KEPT_SUFFIXES and path.stat().st_size <= KEPT_MAX_BYTES:
            target = into / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def main() -> None:
    imports_s = time.monotonic() - IMPORTS_STARTED
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "studies" / "demo.toml"))
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1")
    parser.add_argument("--seed-list", default="", help="these seeds instead, e.g. 1 or 0,2 (to complete a run)")
    parser.add_argument("--workers", type=int, default=2, help="search workers of arm (a)")
    parser.add_argument("--arms", default="a,b,c")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="copy each arm's small outputs (sheets, report, summary, study) to DIR/<arm>-<seed>")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a study override for every arm, e.g. --set study.param_limit=1000000 (the capped cell)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget_s = parse_budget(args.budget)
    data_root = str(Path(args.data).resolve())
    overrides = [f'data.root="{data_root}"', *args.overrides]
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
                    row = arm_expert(config, seed, folder, budget_s, imports_s)
                else:
                    row = arm_plain_optuna(config, seed, folder, budget_s, imports_s)
                if args.keep:
                    keep_outputs(folder, Path(args.keep) / f"{arm}-{seed}")
            results[arm].append(row)
            decoded = (f"; its decoded labels: {row['decoded_test_accuracy']:.4f}"
                       if row.get("decoded_test_accuracy") is not None else "")
            print(f"arm ({arm}) seed {seed}: test accuracy {row['test_accuracy']:.4f} in "
                  f"{format_seconds(row['wall_s'])} ({row['detail']}{decoded})", flush=True)
    means = {arm: statistics.fmean(row["test_accuracy"] for row in rows) for arm, rows in results.items()}
    for arm, mean in means.items():
        print(f"arm ({arm}) mean test accuracy {mean:.4f}")
    decoded = {arm: statistics.fmean(row["decoded_test_accuracy"] for row in rows) for arm, rows in results.items()
               if rows and all(row.get("decoded_test_accuracy") is not None for row in rows)}
    for arm, mean in decoded.items():
        print(f"arm ({arm}) mean test accuracy of its decoded labels {mean:.4f}")
    if "a" in decoded and len(decoded) > 1:
        print(f"decoded ratio: {decoded['a'] / max(mean for arm, mean in decoded.items() if arm != 'a'):.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"budget_s": budget_s, "data": data_root, "overrides": args.overrides,
                                               "results": results, "means": means, "decoded_means": decoded},
                                              indent=1))
    others = [mean for arm, mean in means.items() if arm != "a"]
    if "a" in means and others:
        print(f"ratio: {means['a'] / max(others):.4f}")


if __name__ == "__main__":
    main()
