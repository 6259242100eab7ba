"""Tiny HW1P2-layout corpora written by tests, shared by the data, trainer and search tests.

``write_tiny_corpus(root)`` writes ``train-clean-100`` and ``dev-clean`` (mfcc + transcript), ``test-clean``
(mfcc only) and ``test-clean-labels/transcript`` (the test labels kept apart, as the demo corpus does, so a
submission can be scored). With ``learnable=True`` each frame is its class's mean vector plus unit noise and
labels come in runs of 2-6 frames, so a small MLP learns it well above chance within an epoch or two; with
``learnable=False`` features are pure noise.

Example::

    info = write_tiny_corpus(tmp_path / "data", n_train=24, seed=1)
    info.frames["train-clean-100"]   # frames per utterance, in sorted file order
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phonetune.data_pipeline.phonemes import EOS, HW1P2_PHONEMES, SOS

TRAIN, DEV, TEST = "train-clean-100", "dev-clean", "test-clean"
TEST_LABELS = "test-clean-labels"


@dataclass
class TinyCorpus:
    root: Path
    frames: dict[str, list[int]] = field(default_factory=dict)  # split -> frames per utterance, sorted file order
    names: dict[str, list[str]] = field(default_factory=dict)  # split -> utterance names (file stems)

    def total_frames(self, split: str) -> int:
        return sum(self.frames[split])


def _labels(rng: np.random.Generator, frames: int, num_classes: int) -> np.ndarray:
    """Class indices in runs of 2-6 frames, like phonemes in speech."""
    labels = np.empty(frames, dtype=np.int64)
    position = 0
    while position < frames:
        run = int(rng.integers(2, 7))
        labels[position : position + run] = rng.integers(num_classes)
        position += run
    return labels


def write_tiny_corpus(
    root: str | Path,
    n_train: int = 24,
    n_dev: int = 8,
    n_test: int = 6,
    seed: int = 0,
    min_frames: int = 20,
    max_frames: int = 60,
    learnable: bool = True,
    feature_width: int = 28,
    phonemes: tuple[str, ...] | list[str] = HW1P2_PHONEMES,
) -> TinyCorpus:
    """Write the corpus under ``root`` (created) and return its frame counts and names; deterministic per seed."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    symbols = np.array(list(phonemes))
    class_means = rng.normal(scale=2.0, size=(len(symbols), feature_width))
    corpus = TinyCorpus(root)
    for split, count in ((TRAIN, n_train), (DEV, n_dev), (TEST, n_test)):
        if count <= 0:
            continue
        (root / split / "mfcc").mkdir(parents=True, exist_ok=True)
        transcript_folder = root / (TEST_LABELS if split == TEST else split) / "transcript"
        transcript_folder.mkdir(parents=True, exist_ok=True)
        corpus.frames[split], corpus.names[split] = [], []
        for index in range(count):
            name = f"{100 + index}-{seed}-{index:04d}"
            frames = int(rng.integers(min_frames, max_frames + 1))
            labels = _labels(rng, frames, len(symbols))
            noise = rng.normal(size=(frames, feature_width))
            features = (class_means[labels] + noise) if learnable else noise
            np.save(root / split / "mfcc" / f"{name}.npy", features.astype(np.float32))
            np.save(transcript_folder / f"{name}.npy", np.array([SOS, *symbols[labels], EOS]))
            corpus.frames[split].append(frames)
            corpus.names[split].append(name)
    return corpus
