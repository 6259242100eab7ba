"""Checkpoint payloads: plain dicts written atomically, read back with clear errors.

A training checkpoint (``last.pt``) holds everything needed to continue bit for bit: model, optimizer and scheduler
state, every RNG state (torch CPU and CUDA, numpy, Python), the number of completed epochs, the metrics history and
the run config. A best checkpoint (``best.pt``) drops the optimizer, scheduler and RNG states. Both carry the run
config, so inference rebuilds the model from the checkpoint alone. Payloads hold only tensors and plain Python
values, so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phonetune.atomic import atomic_torch_save
from phonetune.errors import CheckpointError

CHECKPOINT_FORMAT = "phonetune-checkpoint-1"
# Keys every payload must have for load_checkpoint to rebuild a model.
REQUIRED_KEYS = ("format", "model", "run_config", "epoch", "param_count")


def capture_rng_states() -> dict[str, Any]:
    """Every RNG the training loop may draw from, as tensors and plain values."""
    numpy_state = np.random.get_state()
    states: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "numpy": {
            "kind": numpy_state[0],
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "position": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["torch_cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch_cpu"])
    numpy_state = states["numpy"]
    np.random.set_state((
        numpy_state["kind"],
        numpy_state["keys"].numpy().astype(np.uint32),
        numpy_state["position"],
        numpy_state["has_gauss"],
        numpy_state["cached_gaussian"],
    ))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "torch_cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch_cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (with the format tag added) atomically: a crash leaves the previous file intact.

    A failed write (full disk, quota, file size limit) raises CheckpointError naming the file; torch reports a
    failed write of its zip container as a RuntimeError, the OS as an OSError.
    """
    try:
        return atomic_torch_save(path, {"format": CHECKPOINT_FORMAT, **payload})
    except (OSError, RuntimeError) as exc:
        cause = exc.__context__ if isinstance(exc, RuntimeError) and isinstance(exc.__context__, OSError) else exc
        raise CheckpointError(
            f"checkpoint {path} could not be written ({type(cause).__name__}: {cause}); the previous {Path(path).name}, "
            "if any, is left as it was; free disk space (or write the run elsewhere) and run again to resume"
        ) from exc


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a payload, turning a missing, truncated or foreign file into a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} must exist, but it was not found; train a run first")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); it is corrupt or not a checkpoint"
        ) from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} must hold a dict, but holds {type(payload).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} must have keys {list(REQUIRED_KEYS)}, but lacks {missing}")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} must have format {CHECKPOINT_FORMAT!r}, but has {payload['format']!r}"
        )
    return payload
