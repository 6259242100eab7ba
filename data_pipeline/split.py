"""``SplitData``: one split's frames as a single contiguous array, and whole-utterance subsampling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phonetune.errors import ConfigError, DataError


@dataclass
class SplitData:
    """All utterances of one split, concatenated in sorted file order.

    ``features`` is ``(N, F)`` float32 or float16 (usually memory-mapped from the cache), ``labels`` is ``(N,)``
    int16 class indices or ``None`` for a split without transcripts, ``offsets`` is ``(U+1,)`` int64 with utterance
    ``u`` spanning rows ``offsets[u]:offsets[u+1]``, and ``utterance_names`` holds the file stems in the same order.
    """

    name: str
    features: np.ndarray
    labels: np.ndarray | None
    offsets: np.ndarray
    utterance_names: list[str]

    @property
    def num_frames(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_utterances(self) -> int:
        return len(self.offsets) - 1

    @property
    def feature_width(self) -> int:
        return int(self.features.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Frames per utterance, ``(U,)`` int64."""
        return np.diff(self.offsets)

    def utterance(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Features and labels (or None) of utterance ``index``."""
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        labels = None if self.labels is None else self.labels[start:stop]
        return self.features[start:stop], labels


def subsample_utterances(split: SplitData, fraction: float, seed: int) -> SplitData:
    """Keep ``round(fraction * U)`` whole utterances (at least one), chosen by ``seed``, in their file order.

    The same split, fraction and seed always give the same utterances. ``fraction == 1`` returns ``split`` itself;
    otherwise the kept frames are copied into memory (a low-fidelity trial's subset is small).
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"a subsample fraction must be in (0, 1], but got {fraction}")
    if fraction == 1.0:
        return split
    count = max(1, int(round(fraction * split.num_utterances)))
    rng = np.random.default_rng(seed)
    kept = np.sort(rng.choice(split.num_utterances, size=count, replace=False))
    lengths = split.lengths[kept]
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Row indices of every kept frame, built without a Python loop over utterances.
    starts = split.offsets[kept]
    rows = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
    features = np.asarray(split.features[rows])
    labels = None if split.labels is None else np.asarray(split.labels[rows])
    names = [split.utterance_names[i] for i in kept]
    return SplitData(split.name, features, labels, offsets, names)


def concatenate_splits(first: SplitData, second: SplitData, name: str) -> SplitData:
    """One SplitData holding ``first``'s utterances followed by ``second``'s (both labelled, same feature width).

    Training on train + dev needs them as one split. The features are copied into memory once (dev is small next
    to train).
    """
    if first.labels is None or second.labels is None:
        raise DataError(f"splits {first.name} and {second.name} must both have labels to train on, but one has none")
    if first.feature_width != second.feature_width:
        raise DataError(
            f"splits {first.name} and {second.name} must have one feature width, but have {first.feature_width} "
            f"and {second.feature_width}"
        )
    features = np.concatenate([np.asarray(first.features), np.asarray(second.features)])
    labels = np.concatenate([np.asarray(first.labels), np.asarray(second.labels)])
    offsets = np.concatenate([first.offsets, second.offsets[1:] + first.offsets[-1]]).astype(np.int64)
    names = list(first.utterance_names) + list(second.utterance_names)
    return SplitData(name, features, labels, offsets, names)
