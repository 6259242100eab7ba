"""Checkpoint payloads: plain dicts written atomically, read back with clear errors.

A training checkpoint (``last.pt``) holds everything needed to continue bit for bit: model, optimizer and scheduler
state, every RNG state (torch CPU and CUDA, numpy, Python), the number of completed epochs, the metrics history and
the run config. A best checkpoint (``best.pt``) drops the optimizer, scheduler and RNG states. Both carry the run
config, so inference rebuilds the model from the checkpoint alone. Payloads hold only tensors and plain Python
values, so they load with ``torch.load(weights_only=True)``.

Integrity: a checkpoint file is the bytes ``torch.save`` wrote followed by a one-line trailer,
``\nphonetune-sha256:<64 hex digits>\n``, the SHA-256 of every byte before it. ``read_checkpoint`` recomputes it
before unpickling, so any damage after the write (a flipped or zeroed block from a disk, a copy or a transfer) is a
CheckpointError naming the file instead of a model with silently wrong weights; torch's zip reader checks no CRCs.
``torch.load`` ignores bytes after the zip archive, so the file still loads with plain torch too. Files written
before the trailer existed (format ``phonetune-checkpoint-1``) still load, with a warning that they carry no
checksum.
"""

from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from phonetune import interrupts
from phonetune.atomic import atomic_write
from phonetune.errors import CheckpointError, what_is_at

logger = logging.getLogger(__name__)

# Format 2 files end with the SHA-256 trailer; format 1 (no trailer) is still read.
CHECKPOINT_FORMAT = "phonetune-checkpoint-2"
LEGACY_FORMATS = ("phonetune-checkpoint-1",)
CHECKSUM_TAG = b"\nphonetune-sha256:"
TRAILER_BYTES = len(CHECKSUM_TAG) + 64 + 1  # tag, hex digest, newline
# torch.save writes a zip archive; every zip file starts with a local file header.
ZIP_MAGIC = b"PK\x03\x04"
_HASH_CHUNK = 1 << 20
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


class _HashingWriter:
    """A binary handle that passes writes through and hashes them (torch.save only writes, in order)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def _write_with_checksum(handle: IO[bytes], payload: dict[str, Any]) -> None:
    writer = _HashingWriter(handle)
    torch.save(payload, writer)
    handle.write(CHECKSUM_TAG + writer.sha256.hexdigest().encode("ascii") + b"\n")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (with the format tag added) and its SHA-256 trailer atomically: a crash leaves the previous
    file intact.

    A failed write (full disk, quota, file size limit) raises CheckpointError naming the file; torch reports a
    failed write of its zip container as a RuntimeError, the OS as an OSError.
    """
    try:
        return atomic_write(path, lambda handle: _write_with_checksum(handle, {**payload, "format": CHECKPOINT_FORMAT}))
    except (OSError, RuntimeError) as exc:
        if interrupts.requested() or isinstance(exc.__context__, KeyboardInterrupt):
            # A stop request that landed inside torch's writer comes out as its RuntimeError ("unexpected pos"): it is
            # the stop, not a full disk, and the previous file is intact.
            raise KeyboardInterrupt from exc
        cause = exc.__context__ if isinstance(exc, RuntimeError) and isinstance(exc.__context__, OSError) else exc
        raise CheckpointError(
            f"checkpoint {path} could not be written ({type(cause).__name__}: {cause}); the previous {Path(path).name}, "
            "if any, is left as it was; free disk space (or write the run elsewhere) and run again to resume"
        ) from exc


def _verify_checksum(path: Path) -> bool:
    """True when ``path`` ends with a checksum trailer that matches its content; False when it has no trailer.

    CheckpointError when it is not a torch file at all, or when the trailer does not match (damaged).
    """
    with open(path, "rb") as handle:
        head = handle.read(len(ZIP_MAGIC))
        if head != ZIP_MAGIC:
            shown = head + handle.read(12)
            raise CheckpointError(
                f"checkpoint {path} is not a phonetune checkpoint: a checkpoint is a torch.save zip archive "
                f"(starting with {ZIP_MAGIC!r}), but this file starts with {shown!r}; pass the best.pt or last.pt "
                "of a phonetune run"
            )
        size = handle.seek(0, 2)
        if size < len(ZIP_MAGIC) + TRAILER_BYTES:
            return False
        handle.seek(size - TRAILER_BYTES)
        trailer = handle.read(TRAILER_BYTES)
        if not trailer.startswith(CHECKSUM_TAG) or not trailer.endswith(b"\n"):
            return False
        stored = trailer[len(CHECKSUM_TAG):-1].decode("ascii", errors="replace")
        digest = hashlib.sha256()
        handle.seek(0)
        remaining = size - TRAILER_BYTES
        while remaining:
            chunk = handle.read(min(_HASH_CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    if remaining or digest.hexdigest() != stored:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its content does not match the SHA-256 checksum stored in it "
            f"(stored {stored[:16]}..., content {digest.hexdigest()[:16]}...), so it was damaged after it was "
            "written (disk, copy or transfer); use an intact copy or train the run again"
        )
    return True


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a payload, turning a missing, truncated or foreign file into a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} must be a file, but it {what_is_at(path)}; pass the best.pt or last.pt "
                              "of a phonetune run, or train one first")
    try:
        verified = _verify_checksum(path)
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} could not be read ({type(exc).__name__}: {exc})") from exc
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch's unpickler trips on (KeyError, UnpicklingError, ...)
        # torch's messages run over several lines (the weights_only advice); the first one says what failed.
        first_line = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise CheckpointError(
            f"checkpoint {path} is not a phonetune checkpoint, or is corrupt: torch could not read it "
            f"({type(exc).__name__}: {first_line})"
        ) from exc
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"checkpoint {path} is not a phonetune checkpoint: it must hold a dict, but holds {type(payload).__name__}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is not a phonetune checkpoint: it must have keys {list(REQUIRED_KEYS)}, but lacks "
            f"{missing}"
        )
    if payload["format"] == CHECKPOINT_FORMAT:
        if not verified:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: format {CHECKPOINT_FORMAT!r} ends with a SHA-256 checksum line, but "
                "this file's end is missing or damaged; use an intact copy or train the run again"
            )
    elif payload["format"] in LEGACY_FORMATS:
        if not verified:
            logger.warning("checkpoint %s (format %r) predates checksums; its content cannot be verified",
                           path, payload["format"])
    else:
        raise CheckpointError(
            f"checkpoint {path} must have format {CHECKPOINT_FORMAT!r}, but has {payload['format']!r}"
        )
    return payload
