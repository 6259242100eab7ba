"""What a final model is, written beside its submission: ``model_metadata.json`` and the dev diagnostics.

``phonetune ensemble`` (and ``phonetune run``'s final-model step) ends with one model, a single full-data run or an
ensemble of them. A person who picks it up later needs to know what it is without opening a checkpoint: its
architecture, parameter count, data, schedule, epochs and accuracies, and the run config that rebuilds each member
(``model_metadata.json``); and where it errs on dev, phoneme by phoneme (``dev-score/``: ``per_phoneme.csv`` and
``confusion.html``, the files ``phonetune score`` writes for a test submission).

Example::

    metadata = final_model_metadata(result, members, hw1p2_limit=DEFAULT_PARAM_LIMIT)
    atomic_write_json(out / METADATA_FILE, metadata)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from phonetune.configs import to_mapping
from phonetune.model.params import DEFAULT_PARAM_LIMIT, layer_widths
from phonetune.model.scoring import score_predictions, write_score_report
from phonetune.search.final_model.record import FinalModel

if TYPE_CHECKING:
    from phonetune.model.ensemble import EnsembleMember

METADATA_FILE = "model_metadata.json"
DEV_SCORE_FOLDER = "dev-score"


def write_dev_diagnostics(dev_probabilities: np.ndarray, labels: np.ndarray, phonemes: Sequence[str],
                          members: Sequence[int], dev_split: str, out_dir: Path) -> Path:
    """Per-phoneme accuracy and the confusion matrix of the final model on dev, in ``out_dir/dev-score/``."""
    predicted = np.asarray(dev_probabilities).argmax(axis=1)
    what = f"the final model's argmax (full-data runs of search trials {'+'.join(map(str, members))})"
    report = score_predictions(predicted, labels, phonemes, what, f"dev ({dev_split})")
    folder = out_dir / DEV_SCORE_FOLDER
    write_score_report(report, folder)
    return folder


def _epochs(history: Sequence[Mapping[str, Any]]) -> float | None:
    """Passes over the training split (fractional for a run that stopped inside an epoch)."""
    if not history:
        return None
    last = history[-1]
    return float(last.get("epochs_done") or last.get("epoch") or 0.0)


def member_metadata(number: int, member: "EnsembleMember", dev_accuracy: float | None,
                    test_accuracy: float | None) -> dict[str, Any]:
    """One member: where it is, what it is, how it was trained and how it scored."""
    run_config = member.run_config
    model, data, train = run_config.model, run_config.data, run_config.train
    payload = member.payload
    return {
        "search_trial": number,
        "checkpoint": str(member.checkpoint),
        "param_count": member.param_count,
        "architecture": {
            "layer_widths": layer_widths(model),
            "input_dim": run_config.io.input_dim,
            "num_classes": run_config.io.num_classes,
            **to_mapping(model),
        },
        "data": {"root": data.root, "train_split": data.train_split, "dev_split": data.dev_split,
                 "context_frames": data.context_frames, "normalization": data.normalization,
                 "train_fraction": data.train_fraction},
        "schedule": {name: getattr(train, name) for name in (
            "optimizer", "lr", "weight_decay", "batch_size", "scheduler", "warmup_fraction", "hold_steps",
            "total_steps", "epochs", "ema_decay", "label_smoothing")},
        "epochs": _epochs(payload.get("history") or []),
        "steps": payload.get("step"),
        "wall_seconds": payload.get("wall_seconds"),
        "dev_accuracy": dev_accuracy,
        "test_accuracy": test_accuracy,
        "run_config": to_mapping(run_config),  # phonetune train --config on this, as TOML, trains it again
    }


def final_model_metadata(result: FinalModel, members: Mapping[int, "EnsembleMember"],
                         member_test_accuracy: Mapping[int, float]) -> dict[str, Any]:
    """``model_metadata.json``: the final model as a whole, then each member (``member_metadata``)."""
    return {
        "final_model": result.chosen,
        "members": [member_metadata(number, members[number], result.member_dev_accuracy.get(number),
                                    member_test_accuracy.get(number)) for number in result.members],
        "member_weights": result.member_weights or [1] * len(result.members),  # probabilities averaged with these
        "param_count": result.param_count,
        "hw1p2_limit": DEFAULT_PARAM_LIMIT,
        "size_cap": result.size_cap,
        "dev_accuracy": result.dev_accuracy,
        "test_accuracy": result.test_accuracy,
        "submission": str(result.submission),
        "dev_diagnostics": result.dev_score_dir,
        "test_diagnostics": result.test_score_dir,
    }
