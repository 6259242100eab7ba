"""Files to batches for HW1P2 frame-level phoneme classification.

``load_split`` reads and validates a split (or memory-maps it from the cache), ``subsample_utterances`` keeps a
seeded fraction of whole utterances, and ``ContextWindows`` serves shuffled or in-order batches of flattened
context windows from a device-resident tensor. ``inspect_root`` summarizes a data root without building a cache.

``ContextWindows`` is imported on first use so that reading and inspecting data does not import torch.
"""

from typing import TYPE_CHECKING

from phonetune.data_pipeline.cache import resolve_cache_dir
from phonetune.data_pipeline.config import AugmentConfig, DataConfig
from phonetune.data_pipeline.errors import (
    CorruptFileError,
    EmptySplitError,
    FeatureWidthError,
    FrameCountMismatchError,
    MissingSplitError,
    NonFiniteFeatureError,
    UnknownPhonemeError,
    UnpairedFileError,
)
from phonetune.data_pipeline.inspect import inspect_root
from phonetune.data_pipeline.load import compute_global_stats, load_split
from phonetune.data_pipeline.normalize import NormStats
from phonetune.data_pipeline.phonemes import (
    HW1P2_PHONEMES,
    INVENTORIES,
    SEED_46_PHONEMES,
    named_inventory,
    phoneme_to_index,
)
from phonetune.data_pipeline.split import SplitData, subsample_utterances

__all__ = [
    "AugmentConfig",
    "ContextWindows",
    "CorruptFileError",
    "DataConfig",
    "EmptySplitError",
    "FeatureWidthError",
    "FrameCountMismatchError",
    "HW1P2_PHONEMES",
    "INVENTORIES",
    "MissingSplitError",
    "NonFiniteFeatureError",
    "NormStats",
    "SEED_46_PHONEMES",
    "SplitData",
    "UnknownPhonemeError",
    "UnpairedFileError",
    "compute_global_stats",
    "inspect_root",
    "load_split",
    "named_inventory",
    "phoneme_to_index",
    "resolve_cache_dir",
    "subsample_utterances",
]


if TYPE_CHECKING:
    from phonetune.data_pipeline.batches import ContextWindows


def __getattr__(name: str):
    if name == "ContextWindows":
        from phonetune.data_pipeline.batches import ContextWindows

        return ContextWindows
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
