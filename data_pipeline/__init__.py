"""Files to batches for HW1P2 frame-level phoneme classification.

``load_split`` reads and validates a split (or memory-maps it from the cache), ``subsample_utterances`` keeps a
seeded fraction of whole utterances, and ``ContextWindows`` serves shuffled or in-order batches of flattened
context windows from a device-resident tensor. ``inspect_root`` summarizes a data root without building a cache.

``ContextWindows`` (torch) is imported from ``phonetune.data_pipeline.batches``: this package's top level imports no
torch, so configs, reading and inspecting data stay light.
"""

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
from phonetune.data_pipeline.load import TrainingData, compute_global_stats, load_split, load_training_data
from phonetune.data_pipeline.normalize import NormStats
from phonetune.data_pipeline.phonemes import (
    HW1P2_PHONEMES,
    INVENTORIES,
    SEED_46_PHONEMES,
    named_inventory,
    phoneme_to_index,
)
from phonetune.data_pipeline.split import SplitData, concatenate_splits, subsample_utterances

__all__ = [
    "AugmentConfig",
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
    "TrainingData",
    "UnknownPhonemeError",
    "UnpairedFileError",
    "compute_global_stats",
    "concatenate_splits",
    "inspect_root",
    "load_split",
    "load_training_data",
    "named_inventory",
    "phoneme_to_index",
    "resolve_cache_dir",
    "subsample_utterances",
]

