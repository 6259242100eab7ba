"""Feature normalization: per-utterance CMVN, global statistics from the training split, or none.

CMVN (cepstral mean and variance normalization) subtracts each utterance's own per-channel mean and divides by its
standard deviation, which removes a constant channel colouring and loudness. Global normalization uses one mean and
standard deviation per channel computed over every training frame (``compute_global_stats``), and the same
``NormStats`` must be applied to dev and test.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

# Keeps constant channels (std 0) finite: they normalize to 0 instead of NaN.
STD_EPSILON = 1e-5


@dataclass(frozen=True)
class NormStats:
    """Per-channel mean and standard deviation of the training frames."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    frames: int  # training frames the statistics were computed from
    source: str  # fingerprint of the training files they came from

    def digest(self) -> str:
        """Stable hash of the values, part of the cache key of every split normalized with them."""
        payload = json.dumps([self.mean, self.std], separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "frames": self.frames, "source": self.source}

    @classmethod
    def from_dict(cls, payload: dict) -> "NormStats":
        return cls(tuple(payload["mean"]), tuple(payload["std"]), int(payload["frames"]), str(payload["source"]))


class MomentAccumulator:
    """Running per-channel sums in float64, fed one utterance at a time."""

    def __init__(self, feature_width: int) -> None:
        self.frames = 0
        self.total = np.zeros(feature_width, dtype=np.float64)
        self.total_squares = np.zeros(feature_width, dtype=np.float64)

    def add(self, features: np.ndarray) -> None:
        as_double = features.astype(np.float64)
        self.frames += len(features)
        self.total += as_double.sum(axis=0)
        self.total_squares += np.square(as_double).sum(axis=0)

    def stats(self, source: str) -> NormStats:
        mean = self.total / max(self.frames, 1)
        variance = np.maximum(self.total_squares / max(self.frames, 1) - np.square(mean), 0.0)
        return NormStats(tuple(mean.tolist()), tuple(np.sqrt(variance).tolist()), self.frames, source)


def cmvn(features: np.ndarray) -> np.ndarray:
    """``(T, F)`` float32 normalized with the utterance's own per-channel mean and standard deviation."""
    if len(features) == 0:
        return features
    mean = features.mean(axis=0, dtype=np.float64)
    std = features.std(axis=0, dtype=np.float64)
    return ((features - mean) / (std + STD_EPSILON)).astype(np.float32)


def normalize(features: np.ndarray, mode: str, stats: NormStats | None) -> np.ndarray:
    """Apply ``mode`` (``cmvn`` | ``global`` | ``none``) to one utterance's float32 frames."""
    if mode == "cmvn":
        return cmvn(features)
    if mode == "global":
        assert stats is not None, "global normalization needs NormStats"
        mean = np.asarray(stats.mean, dtype=np.float32)
        scale = np.asarray(stats.std, dtype=np.float32) + np.float32(STD_EPSILON)
        return (features - mean) / scale
    return features
