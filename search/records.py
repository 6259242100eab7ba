"""Trial records: what a trial writes about each epoch while it trains, and how everything else reads it back.

The writer is ``EpochRecorder``, the trainer's epoch callback for one trial (``runner.train_trial``): after every
epoch it reports the dev accuracy to Optuna (the pruner's input), asks the pruner (search trials), and records the
curves and the summary attributes (``attributes.py``) on the trial. The readers (``epoch_curve``,
``best_dev_accuracy``, ``pruned_at_epoch``, ...) are what the sheet and the report use, and they read studies
recorded by older versions too (curves as a user attribute, or only Optuna's reported values).

The ``curves`` record (a trial system attribute) is a list of dicts, one per finished epoch, oldest first, with the
keys of ``attributes.CURVE_KEYS`` (``curve_point``).
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from phonetune.model.run_files import EpochMetrics, TrainResult
from phonetune.search import attributes as attrs
from phonetune.search.optuna_private import set_trial_system_attr


def curve_point(metrics: EpochMetrics) -> dict[str, Any]:
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
        "epochs_done": metrics.epochs_done,
    }


class EpochRecorder:
    """The trainer's epoch callback for one trial: report, record, and (search trials) prune."""

    def __init__(self, trial: optuna.Trial, prune_before_epoch: int | None,
                 on_epoch: Callable[[EpochMetrics], None] | None = None) -> None:
        self.trial = trial
        self.prune_before_epoch = prune_before_epoch  # None: never prune (full-data runs)
        self.on_epoch = on_epoch  # called after each recorded epoch (phonetune run: its progress line)
        self.history: list[EpochMetrics] = []
        self.resumed_from_epoch = 0

    def inherit(self, result: TrainResult) -> None:
        """Take over the epochs a resumed run already has: report them again, as this trial's own history."""
        self.resumed_from_epoch = result.resumed_from_epoch
        self.trial.set_user_attr(attrs.RESUMED_FROM_EPOCH, result.resumed_from_epoch)
        self.history = list(result.history)
        for metrics in self.history:
            self.trial.report(metrics.dev_acc, metrics.epoch)
        if self.history:
            self.record(result.wall_seconds)

    def __call__(self, metrics: EpochMetrics) -> None:
        self.history.append(metrics)
        self.record(None)
        self.trial.report(metrics.dev_acc, metrics.epoch)
        if self.on_epoch is not None:
            self.on_epoch(metrics)
        if (
            self.prune_before_epoch is not None
            and metrics.epoch < self.prune_before_epoch
            and self.trial.should_prune()
        ):
            self.trial.set_user_attr(attrs.PRUNED_AT_EPOCH, metrics.epoch)
            raise optuna.TrialPruned(f"pruned after epoch {metrics.epoch} at dev accuracy {metrics.dev_acc:.4f}")

    def record(self, wall_seconds: float | None) -> None:
        trial, history = self.trial, self.history
        set_trial_system_attr(trial, attrs.CURVES, [curve_point(metrics) for metrics in history])
        trial.set_user_attr(attrs.EPOCHS_RUN, len(history))
        trial.set_user_attr(attrs.BEST_DEV_ACCURACY, max(metrics.dev_acc for metrics in history))
        attempt = [metrics for metrics in history if metrics.epoch > self.resumed_from_epoch] or history
        trial.set_user_attr(attrs.FRAMES_PER_S, statistics.fmean(metrics.frames_per_s for metrics in attempt))
        if wall_seconds is not None:
            trial.set_user_attr(attrs.WALL_SECONDS, wall_seconds)


def epoch_curve(trial: FrozenTrial) -> list[dict[str, Any]]:
    """Per-epoch metrics of a trial, oldest first.

    The objective records them as the ``curves`` system attr (a user attr in older studies): a list of dicts with at
    least ``epoch`` and ``dev_accuracy``. Trials without it fall back to the values reported to Optuna, so a trial
    recorded by any objective still draws a curve.
    """
    curves = trial.system_attrs.get(attrs.CURVES, trial.user_attrs.get(attrs.CURVES))
    if isinstance(curves, list) and curves:
        return [dict(point) for point in curves if isinstance(point, dict)]
    return [
        {"epoch": int(step), "dev_accuracy": float(value)}
        for step, value in sorted(trial.intermediate_values.items())
    ]


def dev_accuracies(trial: FrozenTrial) -> list[float]:
    """Dev accuracy after each epoch the trial ran."""
    return [float(point["dev_accuracy"]) for point in epoch_curve(trial) if point.get("dev_accuracy") is not None]


def best_dev_accuracy(trial: FrozenTrial) -> float | None:
    """The trial's objective value when complete, else the best dev accuracy it reached before it stopped."""
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        return float(trial.value)
    accuracies = dev_accuracies(trial)
    return max(accuracies) if accuracies else None


def best_epoch_point(trial: FrozenTrial) -> dict[str, Any]:
    """The curve point of the trial's best dev accuracy (the earliest of equals): its train loss and accuracy and
    dev loss are the ones the sheet shows beside that accuracy; {} before any epoch."""
    curve = [point for point in epoch_curve(trial) if point.get("dev_accuracy") is not None]
    return max(curve, key=lambda point: float(point["dev_accuracy"])) if curve else {}


def training_data_of(study: optuna.Study) -> dict[str, Any]:
    """What a study's trials trained on: ``{"normalization", "train_fraction"}`` as recorded when it was created
    (a search study from before that record: from its settings; {} when neither is there)."""
    recorded = study.user_attrs.get(attrs.TRAINING_DATA_ATTR)
    if isinstance(recorded, dict):
        return dict(recorded)
    settings = study.user_attrs.get(attrs.SETTINGS_ATTR)
    if isinstance(settings, dict):
        return {"normalization": settings.get("data.normalization"),
                "train_fraction": settings.get("fidelity.train_fraction")}
    return {}


def pruned_at_epoch(trial: FrozenTrial) -> int | None:
    """Epoch after which the pruner stopped the trial (None unless pruned)."""
    if trial.state != TrialState.PRUNED:
        return None
    recorded = trial.user_attrs.get(attrs.PRUNED_AT_EPOCH)
    if recorded is not None:
        return int(recorded)
    curve = epoch_curve(trial)
    return int(curve[-1]["epoch"]) if curve else None


def epochs_run(trial: FrozenTrial) -> int:
    recorded = trial.user_attrs.get(attrs.EPOCHS_RUN)
    if recorded is not None:
        return int(recorded)
    return len(epoch_curve(trial))


def trial_fidelity(trial: FrozenTrial, default: str) -> str:
    return str(trial.user_attrs.get(attrs.FIDELITY, default))


def dev_accuracy_after(trial: FrozenTrial, epoch: int) -> float | None:
    """Dev accuracy after ``epoch`` (1-based), None when the trial stopped before it."""
    for point in epoch_curve(trial):
        if int(point.get("epoch", 0)) == epoch and point.get("dev_accuracy") is not None:
            return float(point["dev_accuracy"])
    return None
