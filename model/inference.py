"""From a checkpoint to a Kaggle submission: rebuild the model, predict a split in file order, write ``id,label``.

A checkpoint carries its run config, so nothing else is needed to rebuild the network; the data root may differ
from the one it was trained on (``predict_checkpoint`` points the stored data config at the given root).

Example::

    model, run_config, payload = load_checkpoint("runs/mlp4/best.pt")
    path, frames = predict_checkpoint("runs/mlp4/best.pt", "data/demo", "test-clean", "submission.csv")
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from phonetune.atomic import atomic_write_text
from phonetune.data_pipeline import NormStats, SplitData, compute_global_stats, load_split
from phonetune.data_pipeline.batches import ContextWindows
from phonetune.data_pipeline.errors import FeatureWidthError
from phonetune.data_pipeline.reader import FEATURE_WIDTH_HINT
from phonetune.errors import CheckpointError, ConfigError, DataError
from phonetune.model.params import count_params
from phonetune.model.checkpoint import read_checkpoint
from phonetune.model.device import autocast_context, bf16_pays, resolve_device
from phonetune.model.network import PhonemeMLP
from phonetune.model.train_config import RunConfig, run_config_from_mapping

logger = logging.getLogger(__name__)

SUBMISSION_HEADER = "id,label"


def load_checkpoint(
    path: str | Path, device: str | torch.device | None = None
) -> tuple[PhonemeMLP, RunConfig, dict[str, Any]]:
    """Rebuild the model stored in ``path`` (``last.pt`` or ``best.pt``) in eval mode on ``device`` (default: auto).

    Raises CheckpointError when the file is missing or corrupt, its stored config is invalid, or its weights do not
    fit the network that config describes.
    """
    path = Path(path)
    payload = read_checkpoint(path, map_location="cpu")
    try:
        run_config = run_config_from_mapping(payload["run_config"], source=f"{path} (stored run config)")
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path} carries an invalid run config: {exc}") from exc
    expected = count_params(run_config.model, run_config.io)
    if payload["param_count"] != expected:
        raise CheckpointError(
            f"checkpoint {path} must hold {expected:,} parameters for its config, but records {payload['param_count']:,}"
        )
    model = PhonemeMLP(run_config.model, run_config.io)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {path} weights do not match the network its config describes: {exc}"
        ) from exc
    target = resolve_device("auto" if device is None else device, setting="the device to predict on (--device)")
    return model.to(target).eval(), run_config, payload


def _batch_logits(
    model: torch.nn.Module,
    run_config: RunConfig,
    split_data: SplitData,
    device: str | torch.device,
    batch_size: int | None,
) -> Iterator[torch.Tensor]:
    """Logits of each eval batch in file order, under the run's autocast; callers hold ``inference_mode``."""
    device = torch.device(device)
    model.eval()
    windows = ContextWindows(split_data, run_config.data.context_frames, device)
    # The precision the run trained and evaluated on dev in (model.trainer), so dev figures repeat here.
    bf16 = run_config.train.bf16 and bf16_pays(device, count_params(run_config.model, run_config.io),
                                                run_config.train.batch_size)
    for x, _ in windows.eval_batches(batch_size or run_config.train.eval_batch_size, recycle=True):
        with autocast_context(device, bf16):
            yield model(x)  # (batch, num_classes)


@torch.inference_mode()
def predict_split(
    model: torch.nn.Module,
    run_config: RunConfig,
    split_data: SplitData,
    device: str | torch.device,
    batch_size: int | None = None,
) -> np.ndarray:
    """Predicted class index of every frame of ``split_data``, ``(N,)`` int64, in file order."""
    predictions = [logits.argmax(dim=1) for logits in _batch_logits(model, run_config, split_data, device, batch_size)]
    return torch.cat(predictions).cpu().numpy().astype(np.int64)


@torch.inference_mode()
def predict_probabilities(
    model: torch.nn.Module,
    run_config: RunConfig,
    split_data: SplitData,
    device: str | torch.device,
    batch_size: int | None = None,
) -> np.ndarray:
    """Softmax probabilities of every frame of ``split_data``, ``(N, num_classes)`` float32, in file order."""
    # Softmax in float32 even under bf16 autocast: ensembles average these, and bf16 rounding would blur close calls.
    probabilities = [
        torch.softmax(logits.float(), dim=1)
        for logits in _batch_logits(model, run_config, split_data, device, batch_size)
    ]
    return torch.cat(probabilities).cpu().numpy().astype(np.float32, copy=False)


def write_submission(path: str | Path, labels: Sequence[str] | np.ndarray) -> Path:
    """Write the Kaggle CSV atomically: header ``id,label``, then ``i,<phoneme>`` for frame i = 0, 1, ..."""
    rows = [SUBMISSION_HEADER]
    rows.extend(f"{index},{label}" for index, label in enumerate(labels))
    return atomic_write_text(path, "\n".join(rows) + "\n")


def load_checkpoint_split(
    run_config: RunConfig, payload: dict[str, Any], data_root: str | Path, split: str, *, progress: bool = True
) -> SplitData:
    """``data_root/split`` normalized as the checkpoint's run was trained (``run_config``/``payload`` from
    ``load_checkpoint``).

    With ``normalization="global"`` the statistics are the training ones stored in the checkpoint (so the training
    split need not be there); a checkpoint without them (written before they were stored) has them recomputed from
    the root's training split.
    """
    data = dataclasses.replace(run_config.data, root=str(data_root))
    stats = None
    if data.normalization == "global":
        stored = payload.get("norm_stats")
        stats = NormStats.from_dict(stored) if stored else compute_global_stats(data, progress=progress)
    return load_split(data, split, stats=stats, progress=progress)


def predict_checkpoint(
    checkpoint: str | Path,
    data_root: str | Path,
    split: str,
    out: str | Path,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[Path, int]:
    """Predict every frame of ``data_root/split`` with ``checkpoint`` and write its argmax labels as a submission;
    returns (path, frames).

    The split is normalized as in training (see ``load_checkpoint_split``).
    """
    if split in ("", ".", "..") or Path(split).name != split:
        raise DataError(f"split must name a folder directly under the data root {data_root} (such as test-clean), "
                        f"but got {split!r}")
    model, run_config, payload = load_checkpoint(checkpoint, device)
    try:
        split_data = load_checkpoint_split(run_config, payload, data_root, split, progress=progress)
    except FeatureWidthError as exc:
        # The study's hint names a setting this model cannot change: it reads the width it was trained on.
        raise FeatureWidthError(str(exc).replace(
            FEATURE_WIDTH_HINT, f"checkpoint {checkpoint} was trained on {run_config.data.feature_width} features a "
            "frame and reads only that width")) from None
    device = next(model.parameters()).device
    classes = predict_split(model, run_config, split_data, device)
    symbols = np.asarray(run_config.data.phonemes)[classes]
    path = write_submission(out, symbols)
    logger.info("wrote %d predictions for %s/%s to %s", len(classes), data_root, split, path)
    return path, len(classes)
