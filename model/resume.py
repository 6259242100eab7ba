"""What a run's checkpoints hold, and how a run resumes from them.

A run writes two checkpoints at each evaluation: ``last.pt`` (everything training continues from: raw weights,
optimizer, schedule, EMA, the step, the shuffle generator's state inside an epoch, every RNG) and ``best.pt`` (the
weights that predict, the EMA average when there is one, at the best dev accuracy so far). A resume is allowed only
for the same run config, apart from the keys that do not change what was trained (``run_config_changes``), and a
schedule whose shape depends on the run's length may not change that length once it has begun to decay. On the CPU a
resumed run is bitwise identical to an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from phonetune.errors import CheckpointError
from phonetune.model.checkpoint import capture_rng_states, restore_rng_states, save_checkpoint
from phonetune.model.ema import ModelEMA
from phonetune.model.optim import constant_until, warmup_steps
from phonetune.model.run_files import BEST_CHECKPOINT, LAST_CHECKPOINT, EpochMetrics, TrainResult, run_config_changes
from phonetune.model.train_config import RunConfig, TrainConfig

# Schedules whose shape depends on the total epoch count, so a resumed run may not change ``epochs``.
TOTAL_DEPENDENT_SCHEDULES = ("cosine", "onecycle", "linear")


def checkpoint_step(payload: dict, steps_per_epoch: int) -> int:
    """The optimizer steps a checkpoint was written after (checkpoints from before step counting were all written
    at epoch ends)."""
    return int(payload.get("step", payload["epoch"] * steps_per_epoch))


def check_same_run(stored: dict, current: dict, path: Path, *, step: int, total_steps: int, steps_per_epoch: int,
                   train: TrainConfig) -> None:
    """CheckpointError naming ``path`` and every difference when the checkpoint's run config ``stored`` is not the
    same run as ``current`` (``train``'s mapping form, ``total_steps`` long), ``step`` steps in."""
    differences = run_config_changes(stored, current)
    stored_train, current_train = stored["train"], current["train"]
    if current_train["scheduler"] == "linear" and stored_train.get("hold_steps") != current_train["hold_steps"]:
        # A hold moved while the run is still inside both holds has used the same (constant) rates either way.
        stored_hold_end = warmup_steps(train, total_steps) + int(stored_train.get("hold_steps", 0))
        if step <= min(stored_hold_end, constant_until(train, total_steps)):
            differences = [line for line in differences if not line.startswith("[train] hold_steps:")]
    stored_total = stored_train.get("total_steps", 0) or stored_train["epochs"] * steps_per_epoch
    if stored_total != total_steps and current_train["scheduler"] in TOTAL_DEPENDENT_SCHEDULES:
        # A linear schedule still at its full rate (warm-up or hold) has used the same rates under either total.
        still_constant = constant_until(train, min(stored_total, total_steps))
        if current_train["scheduler"] != "linear" or step > still_constant:
            length = (f"total_steps: {stored_total} -> {total_steps}"
                      if stored_train.get("total_steps", 0) or current_train["total_steps"]
                      else f"epochs: {stored_train['epochs']} -> {current_train['epochs']}")
            why = " and this run has begun to decay" if current_train["scheduler"] == "linear" else ""
            differences.append(f"[train] {length} (the {current_train['scheduler']} schedule depends on the total{why})")
    if differences:
        raise CheckpointError(
            f"{path} must belong to the same run config to resume, but it differs in: "
            + "; ".join(differences)
            + ". Use another output folder, or overwrite (phonetune train --overwrite) to start over"
        )


def restore_training_state(payload: dict, path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: Any, ema: ModelEMA | None) -> None:
    """Put the weights, optimizer, schedule, EMA and RNG states of ``payload`` (read from ``path``) back."""
    model.load_state_dict(payload["model"])
    try:
        optimizer.load_state_dict(payload["optimizer"])
    except ValueError as error:  # torch's message for another parameter grouping
        raise CheckpointError(
            f"{path} holds optimizer state for other parameter groups than this version builds ({error}); "
            "it was written by an older phonetune. Use another output folder, or overwrite "
            "(phonetune train --overwrite) to start over"
        ) from error
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if ema is not None:
        ema.load_state_dict(payload["ema"])
    restore_rng_states(payload["rng"])


def save_run_checkpoints(out_dir: Path, metrics: EpochMetrics, result: TrainResult, *, run_config: RunConfig,
                         model: torch.nn.Module, ema: ModelEMA | None, optimizer: torch.optim.Optimizer,
                         scheduler: Any, step: int, shuffle_state: torch.Tensor | None, norm_stats: Any) -> None:
    """Write ``best.pt`` when ``metrics`` is the best evaluation so far (updating ``result``), then ``last.pt``."""
    predicting = ema.module if ema is not None else model
    common = {
        "model": predicting.state_dict(),
        "run_config": run_config.to_mapping(),
        "epoch": metrics.epoch,
        "param_count": result.param_count,
        "history": [entry.to_dict() for entry in result.history],
        "wall_seconds": result.wall_seconds,
        "norm_stats": None if norm_stats is None else norm_stats.to_dict(),
    }
    if metrics.dev_acc > result.best_dev_acc or result.best_epoch == 0:
        result.best_dev_acc, result.best_epoch = metrics.dev_acc, metrics.epoch
        save_checkpoint(out_dir / BEST_CHECKPOINT, {**common, "best_dev_acc": metrics.dev_acc,
                                                    "best_epoch": metrics.epoch})
    save_checkpoint(out_dir / LAST_CHECKPOINT, {
        **common,
        "model": model.state_dict(),  # the raw weights training continues from (best.pt: the average)
        "ema": None if ema is None else ema.state_dict(),
        "step": step,
        "shuffle_state": shuffle_state,
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": capture_rng_states(),
        "best_dev_acc": result.best_dev_acc,
        "best_epoch": result.best_epoch,
    })
