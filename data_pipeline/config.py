"""``DataConfig``: the ``[data]`` table of a run config, and ``AugmentConfig``, its four masking settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from phonetune.data_pipeline.phonemes import HW1P2_PHONEMES

MAX_CONTEXT_FRAMES = 50
TRAINED_ON_ALL, TRAINED_ON_SUBSAMPLE = "all", "subsample"  # every training utterance, or a fraction of them
# Labels are stored as int16 in the cache.
MAX_CLASSES = 32767


@dataclass
class AugmentConfig:
    """SpecAugment-style masking applied to training windows only (evaluation windows are never masked)."""

    time_mask_prob: float = 0.0  # chance that a window gets one run of frames zeroed
    time_mask_max_frames: int = 0  # longest zeroed run (drawn uniformly from 1..this); 0 disables time masking
    freq_mask_prob: float = 0.0  # chance that a window gets one band of mel channels zeroed in every frame
    freq_mask_max_bands: int = 0  # widest zeroed band (drawn uniformly from 1..this); 0 disables frequency masking

    @property
    def enabled(self) -> bool:
        """True when at least one of the two masks can ever fire."""
        time_on = self.time_mask_prob > 0 and self.time_mask_max_frames > 0
        freq_on = self.freq_mask_prob > 0 and self.freq_mask_max_bands > 0
        return time_on or freq_on

    def problems(self) -> list[str]:
        found = []
        for name in ("time_mask_prob", "freq_mask_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                found.append(f"{name} must be between 0 and 1, but got {name}={value}")
        for name in ("time_mask_max_frames", "freq_mask_max_bands"):
            value = getattr(self, name)
            if value < 0:
                found.append(f"{name} must be 0 or more, but got {name}={value}")
        return found


@dataclass
class DataConfig:
    """Where the data lives, how it is normalized and cached, and how windows are cut and augmented."""

    root: str = "data/demo"  # data root holding <split>/mfcc/*.npy and <split>/transcript/*.npy
    train_split: str = "train-clean-100"  # folder under root used for training (and for global statistics)
    dev_split: str = "dev-clean"  # folder under root used for validation accuracy
    test_split: str = "test-clean"  # folder under root with mfcc only; its sorted order is the submission id order
    context_frames: int = 20  # frames on each side of the centre frame (window = 2*context+1 frames); 0..50
    normalization: Literal["cmvn", "global", "none"] = "cmvn"  # cmvn: per utterance; global: train mean/std
    storage_dtype: Literal["float32", "float16"] = "float32"  # cache and device dtype; float16 halves memory
    cache_dir: str = ""  # empty: ROOT/.phonetune-cache, or ~/.cache/phonetune/<hash> when ROOT is read-only
    train_fraction: float = 1.0  # fraction of training utterances used (whole utterances); low-fidelity trials
    subsample_seed: int = 0  # which utterances a fraction < 1 keeps
    dev_fraction: float = 1.0  # fraction of dev utterances a run evaluates on (by subsample_seed); < 1: cheap checks
    feature_width: int = 28  # columns per mfcc frame; files with another width are rejected
    phonemes: list[str] = field(default_factory=lambda: list(HW1P2_PHONEMES))  # class index = position
    time_mask_prob: float = 0.0  # see AugmentConfig
    time_mask_max_frames: int = 0  # see AugmentConfig
    freq_mask_prob: float = 0.0  # see AugmentConfig
    freq_mask_max_bands: int = 0  # see AugmentConfig

    @property
    def augment(self) -> AugmentConfig:
        """The masking fields as an ``AugmentConfig`` for ``ContextWindows.train_batches``."""
        names = [f.name for f in dataclasses.fields(AugmentConfig)]
        return AugmentConfig(**{name: getattr(self, name) for name in names})

    @property
    def num_classes(self) -> int:
        return len(self.phonemes)

    @property
    def trained_on(self) -> str:
        """What a run of this config trains on, as sheets and metrics.json say it: ``all`` or ``subsample``."""
        return TRAINED_ON_ALL if self.train_fraction >= 1.0 else TRAINED_ON_SUBSAMPLE

    @property
    def input_dim(self) -> int:
        """Width of one flattened context window, the model's input: (2 * context_frames + 1) * feature_width."""
        return (2 * self.context_frames + 1) * self.feature_width

    def problems(self) -> list[str]:
        found = []
        if not self.root:
            found.append("root must name a data folder, but got an empty string")
        for name in ("train_split", "dev_split", "test_split"):
            if not getattr(self, name):
                found.append(f"{name} must name a split folder, but got an empty string")
        if not 0 <= self.context_frames <= MAX_CONTEXT_FRAMES:
            found.append(
                f"context_frames must be between 0 and {MAX_CONTEXT_FRAMES}, but got "
                f"context_frames={self.context_frames}"
            )
        if not 0.0 < self.train_fraction <= 1.0:
            found.append(f"train_fraction must be in (0, 1], but got train_fraction={self.train_fraction}")
        if not 0.0 < self.dev_fraction <= 1.0:
            found.append(f"dev_fraction must be in (0, 1], but got dev_fraction={self.dev_fraction}")
        if self.feature_width < 1:
            found.append(f"feature_width must be at least 1, but got feature_width={self.feature_width}")
        if not self.phonemes:
            found.append("phonemes must list at least one symbol, but got an empty list")
        elif len(self.phonemes) > MAX_CLASSES:
            found.append(f"phonemes must hold at most {MAX_CLASSES} symbols, but got {len(self.phonemes)}")
        duplicates = sorted({p for p in self.phonemes if self.phonemes.count(p) > 1})
        if duplicates:
            found.append(f"phonemes must be unique, but these repeat: {duplicates}")
        found.extend(self.augment.problems())
        if self.freq_mask_max_bands > self.feature_width:
            found.append(
                f"freq_mask_max_bands must be at most feature_width={self.feature_width}, but got "
                f"freq_mask_max_bands={self.freq_mask_max_bands}"
            )
        return found
