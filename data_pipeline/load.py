"""``load_training_data``, ``load_split`` and ``compute_global_stats``: validated, normalized splits from the cache.

``load_training_data`` is the one way a run gets its data: the training split subsampled as ``[data]`` says (and
joined with dev on request), the dev split, and the normalization statistics its checkpoints must carry.

Example::

    config = DataConfig(root="data/demo", normalization="global", train_fraction=0.2)
    data = load_training_data(config)      # data.train: 20% of the utterances; data.stats: train mean/std
    test = load_split(config, config.test_split, stats=data.stats)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from tqdm import tqdm

from phonetune.atomic import atomic_write_json
from phonetune.data_pipeline.cache import SplitCache, files_fingerprint, resolve_cache_dir
from phonetune.data_pipeline.config import DataConfig
from phonetune.data_pipeline.normalize import MomentAccumulator, NormStats, normalize
from phonetune.data_pipeline.reader import LabelLookup, list_split, read_utterance, scan_headers
from phonetune.data_pipeline.split import SplitData, concatenate_splits, subsample_utterances
from phonetune.errors import DataError

logger = logging.getLogger(__name__)


def compute_global_stats(config: DataConfig, *, progress: bool = True) -> NormStats:
    """Per-channel mean and std over every frame of ``config.train_split`` (validated while read).

    The result is kept as JSON in the cache folder, keyed by the training files' fingerprint, so later calls only
    stat the files.
    """
    files = list_split(config.root, config.train_split)
    source = files_fingerprint(files)
    stats_path = resolve_cache_dir(config) / f"{config.train_split}-stats-w{config.feature_width}-{source[:20]}.json"
    try:
        stats = NormStats.from_dict(json.loads(stats_path.read_text()))
        if stats.source == source and len(stats.mean) == config.feature_width:
            return stats
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("normalization statistics %s are unreadable (%s); recomputing", stats_path, exc)
    lengths = scan_headers(files, config.feature_width)
    lookup = LabelLookup(config.phonemes)
    moments = MomentAccumulator(config.feature_width)
    for index in tqdm(range(len(lengths)), desc=f"statistics {config.train_split}", unit="utt", disable=not progress):
        features, _labels = read_utterance(files, index, config.feature_width, lookup)
        moments.add(features)
    stats = moments.stats(source)
    atomic_write_json(stats_path, stats.to_dict())
    return stats


def split_cache(config: DataConfig, split: str, stats: NormStats | None = None) -> SplitCache:
    """The cache folder that ``load_split(config, split, stats=stats)`` reads and builds."""
    settings = {
        "normalization": config.normalization,
        "stats": stats.digest() if config.normalization == "global" and stats is not None else None,
        "storage_dtype": config.storage_dtype,
        "feature_width": config.feature_width,
        "phonemes": list(config.phonemes),
    }
    return SplitCache(resolve_cache_dir(config), split, settings)


def load_split(
    config: DataConfig, split: str, *, stats: NormStats | None = None, progress: bool = True
) -> SplitData:
    """Split ``split`` of ``config.root``, normalized per ``config.normalization``, memory-mapped from the cache.

    The first load (or the first after any file changed) validates every file and builds the cache; any problem
    raises a named ``DataError`` subclass. With ``normalization="global"`` pass the training ``stats``; when they
    are omitted they are computed from (or read back for) ``config.train_split``. Subsampling is separate:
    ``subsample_utterances(split, config.train_fraction, config.subsample_seed)``.
    """
    files = list_split(config.root, split)
    if config.normalization == "global" and stats is None:
        stats = compute_global_stats(config, progress=progress)
    cache = split_cache(config, split, stats)
    fingerprint = cache.key(files)
    cached = cache.load(fingerprint)
    if cached is not None:
        logger.debug("loaded %s from cache %s", split, cache.directory)
        return cached

    lengths = scan_headers(files, config.feature_width)
    lookup = LabelLookup(config.phonemes)

    def read(index: int):
        features, labels = read_utterance(files, index, config.feature_width, lookup)
        return normalize(features, config.normalization, stats), labels

    logger.info("building the %s cache in %s (%d utterances)", split, cache.directory, len(lengths))
    return cache.build(
        fingerprint,
        files,
        lengths,
        read,
        feature_width=config.feature_width,
        storage_dtype=config.storage_dtype,
        progress=progress,
    )


@dataclass
class TrainingData:
    """What a training run reads: its (subsampled) training split, the dev split and the normalization statistics."""

    train: SplitData  # config.train_fraction of the training utterances (+ dev's when loaded with_dev)
    dev: SplitData  # the dev split (dev_fraction of its utterances), labelled
    stats: NormStats | None  # training-split statistics under normalization="global", else None
    train_fraction: float  # the subsample this was built with, so a run given it can check it matches its config
    subsample_seed: int
    with_dev: bool = False
    dev_fraction: float = 1.0


def load_training_data(config: DataConfig, *, with_dev: bool = False, progress: bool = True) -> TrainingData:
    """Training and dev splits for ``config``: statistics first (global normalization), then both splits, then the
    seeded whole-utterance subsample of train (``train_fraction``), then dev appended to train when ``with_dev``, and
    last the dev utterances evaluated (``dev_fraction``: a cheaper, noisier measurement for short trials).

    Statistics are always the training split's alone, as at prediction time. Raises a DataError naming the split
    when dev has no transcripts (nothing could be scored).
    """
    stats = compute_global_stats(config, progress=progress) if config.normalization == "global" else None
    train = load_split(config, config.train_split, stats=stats, progress=progress)
    dev = load_split(config, config.dev_split, stats=stats, progress=progress)
    if dev.labels is None:
        raise DataError(
            f"[data] dev_split {config.dev_split!r} under {config.root} must have transcripts to score a run, but has "
            "none; point dev_split at a labelled split"
        )
    train = subsample_utterances(train, config.train_fraction, config.subsample_seed)
    if with_dev:
        train = concatenate_splits(train, dev, f"{config.train_split}+{config.dev_split}")
    dev = subsample_utterances(dev, config.dev_fraction, config.subsample_seed)
    return TrainingData(train, dev, stats, config.train_fraction, config.subsample_seed, with_dev, config.dev_fraction)
