"""What a run directory holds besides checkpoints: per-epoch metrics, ``metrics.json`` and ``curves.html``.

Layout of ``runs/NAME/``::

    config.toml    the resolved run config (load_run_config reads it back)
    metrics.json   {"dev_accuracy", "best_epoch", "trained_on", "param_count", "epochs_run", "wall_seconds", "history"}
    last.pt        the newest epoch's training checkpoint (for resuming)
    best.pt        the best-dev-accuracy epoch's model (for predicting)
    curves.html    plotly: loss and accuracy per epoch, train and dev
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from phonetune.atomic import atomic_write_json, atomic_write_text

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
CURVES_FILE = "curves.html"
# Settings that may differ between a checkpoint and the run resuming (or reusing) it: they do not change the arithmetic.
RESUME_FREE_KEYS = {("train", "epochs"), ("train", "total_steps"), ("train", "device"), ("train", "compile"),
                    ("train", "eval_batch_size"), ("train", "pause_at_step"), ("train", "eval_every_steps"),
                    ("data", "cache_dir"), ("data", "dev_fraction")}


@dataclass
class EpochMetrics:
    """One epoch's numbers; losses are mean cross-entropy per frame (train includes label smoothing)."""

    epoch: int  # 1-based number of this evaluation: the epoch just finished, or a point inside one (eval_every_steps)
    train_loss: float
    train_acc: float  # fraction of training frames classified correctly while training (dropout on)
    dev_loss: float  # unsmoothed cross-entropy on the dev split, eval mode
    dev_acc: float
    lr: float  # learning rate in use at the end of the epoch's last step
    frames_per_s: float  # training frames per second (forward, backward, step, batching)
    seconds: float  # wall time since the previous evaluation, this one included
    step: int = 0  # optimizer steps taken by the end of this evaluation's training (0 in runs from before steps)
    epochs_done: float = 0.0  # passes over the training split so far (fractional inside an epoch)
    total_steps: int = 0  # the run's end as planned at this evaluation (a deadline may have moved it)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What ``Trainer.train`` returns: the history and where the best model is."""

    out_dir: Path
    history: list[EpochMetrics] = field(default_factory=list)
    best_dev_acc: float = 0.0
    best_epoch: int = 0
    param_count: int = 0
    wall_seconds: float = 0.0  # training time summed over every session of this run, resumes included
    resumed_from_epoch: int = 0  # completed epochs found in last.pt at start (0 for a fresh run)

    @classmethod
    def from_checkpoint(cls, payload: Mapping[str, Any], out_dir: Path) -> "TrainResult":
        """The result a run's checkpoint payload records: its history, best epoch, size and time so far."""
        return cls(
            out_dir=Path(out_dir),
            history=[EpochMetrics(**entry) for entry in payload["history"]],
            best_dev_acc=payload["best_dev_acc"],
            best_epoch=payload["best_epoch"],
            param_count=payload["param_count"],
            wall_seconds=payload["wall_seconds"],
            resumed_from_epoch=payload["epoch"],
        )

    @property
    def best_checkpoint(self) -> Path:
        return self.out_dir / BEST_CHECKPOINT

    @property
    def last_checkpoint(self) -> Path:
        return self.out_dir / LAST_CHECKPOINT


def run_config_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``[section] key: stored -> current`` for each setting in which two run configs (``RunConfig.to_mapping()``, a
    checkpoint's ``run_config``) differ, apart from ``RESUME_FREE_KEYS``: empty when ``current`` may resume or reuse
    the run ``stored`` belongs to."""
    differences = []
    for section, table in current.items():
        stored_table = stored.get(section, {})
        for key in sorted(set(table) | set(stored_table)):
            if (section, key) in RESUME_FREE_KEYS:
                continue
            if stored_table.get(key) != table.get(key):
                differences.append(f"[{section}] {key}: {stored_table.get(key)!r} -> {table.get(key)!r}")
    return differences


def write_metrics(result: TrainResult, trained_on: str) -> Path:
    """``metrics.json``, under the column names of the ablation sheet (``dev_accuracy``, ``trained_on``, ...)."""
    payload = {
        "dev_accuracy": result.best_dev_acc,
        "best_epoch": result.best_epoch,
        "trained_on": trained_on,
        "param_count": result.param_count,
        "epochs_run": len(result.history),
        "wall_seconds": result.wall_seconds,
        "history": [metrics.to_dict() for metrics in result.history],
    }
    return atomic_write_json(result.out_dir / METRICS_FILE, payload)


def write_curves(result: TrainResult, title: str) -> Path | None:
    """Loss and accuracy per epoch, train and dev, as one self-contained plotly HTML page."""
    if not result.history:
        return None
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    epochs = [metrics.epoch for metrics in result.history]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("cross-entropy per frame", "frame accuracy"))
    for column, (name, train_key, dev_key) in enumerate(
        [("loss", "train_loss", "dev_loss"), ("accuracy", "train_acc", "dev_acc")], start=1
    ):
        for split, key, dash in (("train", train_key, "dot"), ("dev", dev_key, "solid")):
            values = [getattr(metrics, key) for metrics in result.history]
            figure.add_trace(
                go.Scatter(x=epochs, y=values, mode="lines+markers", name=f"{split} {name}",
                           line={"dash": dash}),
                row=1, col=column,
            )
    figure.update_xaxes(title_text="epoch", dtick=1)
    figure.update_layout(title=title, height=450)
    return atomic_write_text(result.out_dir / CURVES_FILE, figure.to_html(include_plotlyjs=True, full_html=True))
