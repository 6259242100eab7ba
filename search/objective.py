"""The objective: train one trial's sampled model on the search subsample, report dev accuracy, prune, record.

Per trial: ``suggest_run_config`` draws a budget-fitting ``RunConfig`` (``[fidelity] trial_epochs`` epochs on
``train_fraction`` of the training utterances), the model package's ``Trainer`` trains it into
``<artifacts>/trials/<number>/`` with the worker's preloaded splits, and after every epoch (its checkpoint already
written) the callback reports dev accuracy to Optuna and raises ``optuna.TrialPruned`` when the pruner says so. The
value is the best dev accuracy of any epoch (maximized).

A trial re-queued because its worker died (``RetryHeartbeatStaleTrialCallback``) starts from a copy of the dead
attempt's run folder, so the trainer resumes after the last epoch whose checkpoint was written and finished epochs
are not trained again; its epochs are re-reported to Optuna from the checkpoint's history.

The attributes it records are listed in ``search/attributes.py``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import optuna

from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.space import suggest_run_config

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"


def curve_point(metrics: Any) -> dict[str, Any]:
    """One ``curves`` entry (keys in ``attributes.CURVE_KEYS``) from the trainer's ``EpochMetrics``."""
    return {
        "epoch": metrics.epoch,
        "train_loss": metrics.train_loss,
        "train_accuracy": metrics.train_acc,
        "dev_loss": metrics.dev_loss,
        "dev_accuracy": metrics.dev_acc,
        "lr": metrics.lr,
        "seconds": metrics.seconds,
        "frames_per_s": metrics.frames_per_s,
    }


def retry_lineage(trial: optuna.Trial) -> list[int]:
    """Numbers of the earlier attempts of this trial, oldest first (empty for a fresh trial).

    Optuna's retry callback keeps them in the ``retry_history`` system attribute, which a live ``Trial`` does not
    expose, so it is read from the storage.
    """
    system_attrs = trial.study._storage.get_trial_system_attrs(trial._trial_id)
    return list(system_attrs.get("retry_history", []))


def seed_from_earlier_attempt(config: StudyConfig, lineage: list[int], out_dir: Path) -> int | None:
    """Copy the newest earlier attempt's run folder that holds a checkpoint into ``out_dir``; return its number.

    The copy goes to a temporary sibling first and is renamed into place, so a worker killed while copying leaves
    no half-copied checkpoint for the next attempt to trip over.
    """
    if (out_dir / LAST_CHECKPOINT).exists():
        return None
    for number in reversed(lineage):
        source = config.trial_dir(number)
        if not (source / LAST_CHECKPOINT).exists():
            continue
        staging = out_dir.with_name(f".{out_dir.name}.copying-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
        return number
    return None


class TrialObjective:
    """Callable objective holding a worker's preloaded splits; one instance serves every trial of the worker."""

    def __init__(self, config: StudyConfig, train_split: Any, dev_split: Any, *, progress: bool = False) -> None:
        self.config = config
        self.train_split = train_split  # the whole training split: the trainer keeps the configured fraction
        self.dev_split = dev_split
        self.progress = progress

    def __call__(self, trial: optuna.Trial) -> float:
        from phonetune.model.trainer import Trainer

        config = self.config
        run_config = suggest_run_config(trial, config)
        out_dir = config.trial_dir(trial.number)
        lineage = retry_lineage(trial)
        if lineage:
            trial.set_user_attr(attrs.RETRIED_FROM, lineage[0])
            copied_from = seed_from_earlier_attempt(config, lineage, out_dir)
            logger.info("trial %d retries trial %d; checkpoint copied from trial %s", trial.number, lineage[0],
                        copied_from)
        elif out_dir.exists():
            # A fresh trial number whose folder exists is left over from a deleted study of the same name.
            aside = out_dir.with_name(f"{out_dir.name}.stale-{int(time.time())}")
            logger.warning("trial %d: moving the leftover folder %s aside to %s", trial.number, out_dir, aside)
            os.replace(out_dir, aside)
        out_dir.mkdir(parents=True, exist_ok=True)
        trial.set_user_attr(attrs.CHECKPOINT_DIR, str(out_dir))
        trial.set_user_attr(attrs.FIDELITY, "search")
        trial.set_user_attr(attrs.WORKER, f"{socket.gethostname()}:{os.getpid()}")

        started = time.perf_counter()
        trainer = Trainer(
            run_config,
            out_dir,
            train_split=self.train_split,
            dev_split=self.dev_split,
            epoch_callback=lambda metrics: self._on_epoch(trial, trainer, metrics),
            progress=self.progress,
            param_budget=config.param_budget,
            curves=False,
        )
        try:
            trainer.setup()
            resumed = trainer.result.resumed_from_epoch
            trial.set_user_attr(attrs.RESUMED_FROM_EPOCH, resumed)
            # Epochs inherited from a dead attempt: report them again, as this trial's own history.
            for metrics in trainer.result.history:
                trial.report(metrics.dev_acc, metrics.epoch)
            if trainer.result.history:
                self._record_progress(trial, trainer)
            result = trainer.train()
        finally:
            trial.set_user_attr(attrs.WALL_SECONDS, trainer.result.wall_seconds or time.perf_counter() - started)
            trainer.cleanup()
        self._record_progress(trial, trainer)
        return float(result.best_dev_acc)

    def _record_progress(self, trial: optuna.Trial, trainer: Any) -> None:
        history = trainer.result.history
        trial.set_user_attr(attrs.CURVES, [curve_point(metrics) for metrics in history])
        trial.set_user_attr(attrs.EPOCHS_RUN, len(history))
        trial.set_user_attr(attrs.BEST_DEV_ACCURACY, max(metrics.dev_acc for metrics in history))
        trial.set_user_attr(attrs.FRAMES_PER_S, statistics.fmean(metrics.frames_per_s for metrics in history))
        trial.set_user_attr(attrs.WALL_SECONDS, trainer.result.wall_seconds)

    def _on_epoch(self, trial: optuna.Trial, trainer: Any, metrics: Any) -> None:
        self._record_progress(trial, trainer)
        trial.report(metrics.dev_acc, metrics.epoch)
        if metrics.epoch < self.config.fidelity.trial_epochs and trial.should_prune():
            trial.set_user_attr(attrs.PRUNED_AT_EPOCH, metrics.epoch)
            raise optuna.TrialPruned(f"pruned after epoch {metrics.epoch} at dev accuracy {metrics.dev_acc:.4f}")
