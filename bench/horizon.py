"""One change at one horizon: the study's ``expert`` warm start at a size cap against it with hyperparameters changed,
both trained the same number of epochs on a schedule that ends with them, in one run.

What the planner's ``SATURATION_FRAMES_PER_PARAM`` and the prior sampler's moves rest on: how a model at the cap
gains with its training length (run it at several ``--epochs``), and which single changes still pay at a long
horizon rather than only at a short one. Each side is the expert resized to ``--cap`` (its width; a change of
context or depth keeps the parameter count), trained on all the training data with a linear schedule ending at
the last step (5% warm-up) and a weight average, scored by its argmax on dev and test. Last line::

    ratio: test accuracy with the change / without it

Usage: python bench/horizon.py --data data/demo --cap 1000000 --epochs 6 --set context_frames=12 [--set lr=4e-3]
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import optuna

from phonetune.model.inference import predict_checkpoint
from phonetune.model.params import count_params
from phonetune.model.run_files import BEST_CHECKPOINT
from phonetune.model.scoring import score_submission
from phonetune.model.trainer import Trainer
from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config
from phonetune.search.runner import load_fidelity_data
from phonetune.search.space import suggest_run_config, warm_start_params

REPO = Path(__file__).resolve().parents[1]
EVALUATIONS = 5


def train_and_score(config, changes: dict, epochs: float, seed: int, folder: Path, data) -> dict:
    expert = next(entry for entry in config.warm_start if entry.name == "expert")
    expert = dataclasses.replace(expert, values={**expert.values, **changes})
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(warm_start_params(config, expert))
    run_config = suggest_run_config(study.ask(), config, attrs.FULL_FIDELITY)
    steps = int(epochs * data.train.num_frames / run_config.train.batch_size)
    train = dataclasses.replace(run_config.train, seed=seed, scheduler="linear", total_steps=steps,
                                warmup_fraction=0.05, eval_every_steps=max(1, steps // EVALUATIONS),
                                ema_decay=1.0 - 1.0 / max(10, steps // 50))
    run_config = dataclasses.replace(run_config, train=train)
    started = time.monotonic()
    trainer = Trainer(run_config, folder, data=data, progress=False, curves=False)
    try:
        trainer.setup()
        result = trainer.train()
    finally:
        trainer.cleanup()
    wall = time.monotonic() - started
    submission, _frames = predict_checkpoint(folder / BEST_CHECKPOINT, config.data.root, config.data.test_split,
                                             folder / "submission.csv", progress=False)
    labels = Path(config.data.root) / f"{config.data.test_split}-labels"
    test = score_submission(submission, labels, config.data.phonemes).accuracy
    return {"params": count_params(run_config.model, run_config.io), "width": run_config.model.base_width,
            "steps": steps, "wall_s": wall, "dev": result.best_dev_acc, "test": test}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "studies" / "demo.toml"))
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--cap", type=int, default=1_000_000, help="the size cap ([study] param_limit)")
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="changes", action="append", default=[], metavar="NAME=VALUE",
                        help="a warm-start value to change, e.g. context_frames=12 (a Python literal)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    changes = {name: ast.literal_eval(value) for name, value in (text.split("=", 1) for text in args.changes)}
    config = load_study_config(args.config, [f'data.root="{Path(args.data).resolve()}"',
                                             f"study.param_limit={args.cap}"])
    data = load_fidelity_data(config, attrs.FULL_FIDELITY)
    rows = {}
    for name, change in (("expert", {}), ("changed", changes)):
        with tempfile.TemporaryDirectory(prefix=f"horizon-{name}-") as tmp:
            rows[name] = train_and_score(config, change, args.epochs, args.seed, Path(tmp), data)
        row = rows[name]
        print(f"{name} {change or ''}: {row['params']:,} params (width {row['width']}), {args.epochs:g} epochs "
              f"({row['steps']:,} steps, {row['wall_s']:.0f} s): dev {row['dev']:.4f}, test {row['test']:.4f}",
              flush=True)
    print(f"ratio: {rows['changed']['test'] / rows['expert']['test']:.4f}")


if __name__ == "__main__":
    main()
