"""Reading and validating splits: round trips, normalization modes, and the named data errors (a corrupt, unpaired,
miscounted or mislabelled file is in tests/scenarios/test_hostile_data.py, which also checks that the cache survives
it)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from corpus import DEV, TEST, TRAIN, write_tiny_corpus

from phonetune.configs import from_mapping
from phonetune.data_pipeline import (
    SEED_46_PHONEMES,
    DataConfig,
    EmptySplitError,
    FeatureWidthError,
    FrameCountMismatchError,
    MissingSplitError,
    NonFiniteFeatureError,
    UnknownPhonemeError,
    compute_global_stats,
    load_split,
    named_inventory,
    phoneme_to_index,
)
from phonetune.data_pipeline.cache import BUILD_LOCK
from phonetune.errors import ConfigError, DataError


def config_for(corpus, **overrides) -> DataConfig:
    return DataConfig(root=str(corpus.root), **overrides)


def test_round_trip_counts_names_and_labels(tiny_corpus):
    config = config_for(tiny_corpus, normalization="none")
    index = phoneme_to_index(config.phonemes)
    for split in (TRAIN, DEV):
        data = load_split(config, split, progress=False)
        assert data.num_frames == tiny_corpus.total_frames(split)
        assert list(data.lengths) == tiny_corpus.frames[split]
        assert data.utterance_names == tiny_corpus.names[split]
        assert data.labels.dtype == np.int16 and data.offsets.dtype == np.int64
        for position, name in enumerate(data.utterance_names):
            features, labels = data.utterance(position)
            np.testing.assert_array_equal(features, np.load(tiny_corpus.root / split / "mfcc" / f"{name}.npy"))
            transcript = np.load(tiny_corpus.root / split / "transcript" / f"{name}.npy")
            assert [index[s] for s in transcript[1:-1]] == labels.tolist()
    test = load_split(config, TEST, progress=False)
    assert test.labels is None and test.utterance_names == tiny_corpus.names[TEST]


def test_cmvn_normalizes_each_utterance(tiny_corpus):
    data = load_split(config_for(tiny_corpus), TRAIN, progress=False)
    for position in range(data.num_utterances):
        features, _ = data.utterance(position)
        np.testing.assert_allclose(features.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(features.std(axis=0), 1, atol=1e-3)


def test_global_normalization_uses_train_statistics_for_every_split(tiny_corpus):
    config = config_for(tiny_corpus, normalization="global")
    stats = compute_global_stats(config, progress=False)
    raw_train = np.concatenate([np.load(p) for p in sorted((tiny_corpus.root / TRAIN / "mfcc").glob("*.npy"))])
    np.testing.assert_allclose(stats.mean, raw_train.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.std, raw_train.std(axis=0), rtol=1e-4)
    assert stats.frames == len(raw_train)
    train = load_split(config, TRAIN, stats=stats, progress=False)
    np.testing.assert_allclose(np.asarray(train.features).mean(axis=0), 0, atol=1e-4)
    dev = load_split(config, DEV, stats=stats, progress=False)
    raw_dev = load_split(config_for(tiny_corpus, normalization="none"), DEV, progress=False)
    expected = (np.asarray(raw_dev.features) - np.array(stats.mean)) / (np.array(stats.std) + 1e-5)
    np.testing.assert_allclose(dev.features, expected, rtol=1e-5, atol=1e-5)
    # Without explicit stats the same statistics are computed (or read back) from the train split.
    np.testing.assert_array_equal(load_split(config, DEV, progress=False).features, dev.features)


def test_seed_46_inventory_reads_data_labelled_with_it(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "d", n_train=3, n_dev=0, n_test=0, phonemes=SEED_46_PHONEMES)
    with pytest.raises(UnknownPhonemeError):
        load_split(DataConfig(root=str(corpus.root)), TRAIN, progress=False)
    data = load_split(DataConfig(root=str(corpus.root), phonemes=named_inventory("seed-46")), TRAIN, progress=False)
    assert data.labels.max() < 46 and data.num_frames == corpus.total_frames(TRAIN)


def test_data_config_ranges_and_unknown_keys():
    assert from_mapping(DataConfig, {"context_frames": 50}, "t").context_frames == 50
    with pytest.raises(ConfigError) as caught:
        from_mapping(
            DataConfig,
            {"context_frames": 51, "train_fraction": 0.0, "time_mask_prob": 1.5, "normalization": "zscore", "ctx": 1},
            "run.toml [data]",
        )
    message = str(caught.value)
    for expected in ("unknown key 'ctx'", "normalization must be one of ['cmvn', 'global', 'none'], but got 'zscore'"):
        assert expected in message
    with pytest.raises(ConfigError) as caught:
        from_mapping(DataConfig, {"context_frames": 51, "train_fraction": 0.0, "time_mask_prob": 1.5}, "run.toml [data]")
    message = str(caught.value)
    assert "context_frames must be between 0 and 50, but got context_frames=51" in message
    assert "train_fraction must be in (0, 1], but got train_fraction=0.0" in message
    assert "time_mask_prob must be between 0 and 1, but got time_mask_prob=1.5" in message
    config = DataConfig(time_mask_prob=0.3, time_mask_max_frames=4)
    assert config.augment.time_mask_prob == 0.3 and config.augment.enabled
    assert not DataConfig().augment.enabled
    assert DataConfig().phonemes[0] == "[SIL]" and len(DataConfig().phonemes) == 40


# --- named errors: each breaks one file of a fresh corpus and expects the class and the file in the message
# (corrupt, unpaired, miscounted and mislabelled files: tests/scenarios/test_hostile_data.py) ---


@pytest.fixture
def small_corpus(tmp_path):
    return write_tiny_corpus(tmp_path / "data", n_train=4, n_dev=2, n_test=2, max_frames=30)


def first_file(corpus, split=TRAIN, folder="mfcc"):
    return corpus.root / split / folder / f"{corpus.names[split][0]}.npy"


def load_train(corpus):
    return load_split(DataConfig(root=str(corpus.root)), TRAIN, progress=False)


def test_missing_root_and_split(tmp_path, small_corpus):
    with pytest.raises(MissingSplitError, match=str(tmp_path / "nowhere")):
        load_split(DataConfig(root=str(tmp_path / "nowhere")), TRAIN, progress=False)
    with pytest.raises(MissingSplitError, match="train-clean-360.*was not found.*dev-clean"):
        load_split(DataConfig(root=str(small_corpus.root)), "train-clean-360", progress=False)


def test_missing_sos_eos_markers(small_corpus):
    path = first_file(small_corpus, folder="transcript")
    transcript = np.load(path)
    transcript[0] = "AA"
    np.save(path, transcript)
    with pytest.raises(FrameCountMismatchError, match=r"must start with \[SOS\] and end with \[EOS\], but starts with 'AA'"):
        load_train(small_corpus)


@pytest.mark.parametrize("shape", [(10, 13), (10,), (10, 28, 1)])
def test_wrong_feature_width_or_rank(small_corpus, shape):
    path = first_file(small_corpus)
    np.save(path, np.zeros(shape, dtype=np.float32))
    with pytest.raises(FeatureWidthError, match=rf"{path} must have shape \(frames, 28\), but has shape"):
        load_train(small_corpus)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features(small_corpus, bad):
    path = first_file(small_corpus)
    features = np.load(path)
    features[2, 5] = bad
    np.save(path, features)
    with pytest.raises(NonFiniteFeatureError, match=rf"{path} must hold finite values, but has 1 non-finite ones, first {bad} at frame 2, channel 5"):
        load_train(small_corpus)


def test_empty_split(small_corpus):
    for path in (small_corpus.root / DEV / "mfcc").glob("*.npy"):
        path.unlink()
    for path in (small_corpus.root / DEV / "transcript").glob("*.npy"):
        path.unlink()
    with pytest.raises(EmptySplitError, match=f"{small_corpus.root / DEV / 'mfcc'} has no .npy files"):
        load_split(DataConfig(root=str(small_corpus.root)), DEV, progress=False)


def test_errors_are_data_errors_and_nothing_is_cached_on_failure(small_corpus):
    path = first_file(small_corpus)
    features = np.load(path)
    features[-1, -1] = np.nan
    np.save(path, features)
    with pytest.raises(DataError):
        load_train(small_corpus)
    cache = small_corpus.root / ".phonetune-cache"
    # The empty build lock may stay (removing a lock file others may hold is a race); no data, no cache entry may.
    leftovers = [p for p in cache.rglob("*") if p.is_file() and p.name != BUILD_LOCK] if cache.exists() else []
    assert leftovers == []
    assert os.path.exists(path)
