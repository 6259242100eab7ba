"""Context windows on real cached splits: alignment, zero padding, no cross-utterance mixing, shuffling, masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from corpus import DEV, TEST, TRAIN

from phonetune.data_pipeline import (
    AugmentConfig,
    DataConfig,
    load_split,
    phoneme_to_index,
    subsample_utterances,
)
from phonetune.data_pipeline.batches import ContextWindows
from phonetune.errors import ConfigError, DataError


def raw_config(corpus, **overrides) -> DataConfig:
    return DataConfig(root=str(corpus.root), normalization="none", **overrides)


def expected_windows(corpus, split: str, context: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Windows built independently, one utterance at a time from the .npy files, with zero padding."""
    windows, labels = [], []
    index = phoneme_to_index(DataConfig().phonemes)
    label_split = "test-clean-labels" if split == TEST else split
    for name in corpus.names[split]:
        frames = np.load(corpus.root / split / "mfcc" / f"{name}.npy")
        padded = np.pad(frames, ((context, context), (0, 0)))
        for centre in range(len(frames)):
            windows.append(padded[centre : centre + 2 * context + 1].reshape(-1))
        transcript = np.load(corpus.root / label_split / "transcript" / f"{name}.npy")
        labels.append(np.array([index[s] for s in transcript[1:-1]]))
    return np.stack(windows), labels


@pytest.mark.parametrize("context", [0, 3, 25])
def test_eval_windows_match_files_with_zero_padding_and_labels(tiny_corpus, context):
    split = load_split(raw_config(tiny_corpus), DEV, progress=False)
    windows = ContextWindows(split, context, "cpu")
    xs, ys = zip(*windows.eval_batches(37))
    x, y = torch.cat(xs).numpy(), torch.cat(ys).numpy()
    expected_x, expected_labels = expected_windows(tiny_corpus, DEV, context)
    assert x.shape == (tiny_corpus.total_frames(DEV), (2 * context + 1) * 28)
    assert windows.input_dim == x.shape[1]
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, np.concatenate(expected_labels))
    assert ys[0].dtype == torch.int64 and xs[0].dtype == torch.float32


def test_centre_frame_is_frame_i_and_edges_are_zero_not_neighbours(tiny_corpus):
    context = 30  # longer than half the shortest utterance: windows would reach the neighbours if not padded
    split = load_split(raw_config(tiny_corpus), TRAIN, progress=False)
    windows = ContextWindows(split, context, "cpu")
    x = torch.cat([batch for batch, _ in windows.eval_batches(1000)]).view(-1, 2 * context + 1, 28)
    for utterance in range(split.num_utterances):
        start, stop = split.offsets[utterance], split.offsets[utterance + 1]
        frames = np.asarray(split.features[start:stop])
        length = stop - start
        for i in (0, length // 2, length - 1):
            window = x[start + i].numpy()
            np.testing.assert_array_equal(window[context], frames[i])
            assert not window[: max(context - i, 0)].any()  # before the utterance: zeros only
            after = context + (length - i)
            assert not window[after:].any()  # after the utterance: zeros only
            np.testing.assert_array_equal(window[max(context - i, 0) : after], frames[max(i - context, 0) : i + context + 1])


def test_test_split_has_windows_without_labels(tiny_corpus):
    split = load_split(raw_config(tiny_corpus), TEST, progress=False)
    windows = ContextWindows(split, 2, "cpu")
    batches = list(windows.eval_batches(50))
    assert all(y is None for _, y in batches)
    assert sum(len(x) for x, _ in batches) == tiny_corpus.total_frames(TEST)
    with pytest.raises(DataError, match="no transcripts"):
        next(windows.train_batches(8, torch.Generator().manual_seed(0)))


def test_train_epoch_is_a_seeded_permutation_of_all_frames(tiny_corpus):
    split = load_split(raw_config(tiny_corpus), TRAIN, progress=False)
    windows = ContextWindows(split, 4, "cpu")
    eval_x = torch.cat([x for x, _ in windows.eval_batches(4096)])

    def epoch(seed):
        batches = list(windows.train_batches(64, torch.Generator().manual_seed(seed)))
        return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])

    x, y = epoch(7)
    x_again, y_again = epoch(7)
    x_other, _ = epoch(8)
    assert torch.equal(x, x_again) and torch.equal(y, y_again)
    assert not torch.equal(x, x_other)
    # Every frame appears exactly once: match each shuffled window to its eval position through its label/content.
    order = torch.randperm(split.num_frames, generator=torch.Generator().manual_seed(7))
    assert torch.equal(x, eval_x[order])
    assert torch.equal(y, torch.from_numpy(np.asarray(split.labels, dtype=np.int64))[order])


def test_no_batch_of_a_single_frame(tiny_corpus):
    split = load_split(raw_config(tiny_corpus), TRAIN, progress=False)
    windows = ContextWindows(split, 1, "cpu")
    batch_size = split.num_frames - 1  # leaves a remainder of exactly one frame
    sizes = [len(y) for _, y in windows.train_batches(batch_size, torch.Generator().manual_seed(0))]
    assert sizes == [split.num_frames]
    assert windows.num_batches(batch_size) == 1
    assert [len(x) for x, _ in windows.eval_batches(split.num_frames // 2)][-1] >= 2


def test_time_and_frequency_masks_zero_spans_inside_each_window_only(tiny_corpus):
    split = load_split(DataConfig(root=str(tiny_corpus.root)), TRAIN, progress=False)
    context, width = 5, 28
    windows = ContextWindows(split, context, "cpu")
    plain = list(windows.train_batches(256, torch.Generator().manual_seed(3)))
    always = AugmentConfig(time_mask_prob=1.0, time_mask_max_frames=4, freq_mask_prob=1.0, freq_mask_max_bands=6)
    masked = list(windows.train_batches(256, torch.Generator().manual_seed(3), always))
    time_widths, band_widths = set(), set()
    for (x, y), (mx, my) in zip(plain, masked):
        assert torch.equal(y, my)
        x, mx = x.view(-1, 2 * context + 1, width), mx.view(-1, 2 * context + 1, width)
        zeroed = (mx == 0) & (x != 0)
        assert torch.equal(mx[~zeroed], x[~zeroed])  # everything not zeroed is untouched
        frames_hit = (mx == 0).all(dim=2)  # (B, 2K+1) fully zeroed frames
        bands_hit = (mx == 0).all(dim=1)  # (B, F) fully zeroed channels
        interior = ~(x == 0).all(dim=2).any(dim=1)  # windows that reach no padding, so every zero frame is a mask
        for row in torch.nonzero(interior).flatten().tolist():
            frame_run = torch.nonzero(frames_hit[row]).flatten()
            band_run = torch.nonzero(bands_hit[row]).flatten()
            assert 1 <= len(frame_run) <= 4 and 1 <= len(band_run) <= 6
            assert torch.equal(frame_run, torch.arange(frame_run[0], frame_run[0] + len(frame_run)))
            assert torch.equal(band_run, torch.arange(band_run[0], band_run[0] + len(band_run)))
            # Nothing outside the run/band is zero.
            outside = ~(frames_hit[row][:, None] | bands_hit[row][None, :])
            assert (mx[row][outside] != 0).all()
            time_widths.add(len(frame_run))
            band_widths.add(len(band_run))
    assert time_widths == {1, 2, 3, 4} and band_widths == set(range(1, 7))


def test_mask_probability_zero_changes_nothing_and_half_hits_about_half(tiny_corpus):
    split = load_split(DataConfig(root=str(tiny_corpus.root)), TRAIN, progress=False)
    windows = ContextWindows(split, 3, "cpu")
    plain = torch.cat([x for x, _ in windows.train_batches(512, torch.Generator().manual_seed(1))])
    never = AugmentConfig(time_mask_prob=0.0, time_mask_max_frames=5, freq_mask_prob=0.0, freq_mask_max_bands=5)
    unmasked = torch.cat([x for x, _ in windows.train_batches(512, torch.Generator().manual_seed(1), never)])
    assert torch.equal(plain, unmasked)
    half = AugmentConfig(time_mask_prob=0.5, time_mask_max_frames=2)
    masked = torch.cat([x for x, _ in windows.train_batches(512, torch.Generator().manual_seed(1), half)])
    interior = ~(plain.view(-1, 7, 28) == 0).all(dim=2).any(dim=1)  # windows that reach no padding
    hit = (masked.view(-1, 7, 28) == 0).all(dim=2).any(dim=1)
    hit_fraction = hit[interior].float().mean().item()
    assert 0.4 < hit_fraction < 0.6


def test_float16_storage_gives_float32_batches_close_to_float32(tiny_corpus):
    full = load_split(DataConfig(root=str(tiny_corpus.root)), DEV, progress=False)
    half = load_split(DataConfig(root=str(tiny_corpus.root), storage_dtype="float16"), DEV, progress=False)
    assert half.features.dtype == np.float16 and full.features.dtype == np.float32
    x_full = next(ContextWindows(full, 2, "cpu").eval_batches(10_000))[0]
    x_half = next(ContextWindows(half, 2, "cpu").eval_batches(10_000))[0]
    assert x_half.dtype == torch.float32
    torch.testing.assert_close(x_half, x_full, atol=1e-2, rtol=1e-3)


def test_subsample_keeps_whole_utterances_deterministically(tiny_corpus):
    split = load_split(raw_config(tiny_corpus), TRAIN, progress=False)
    first = subsample_utterances(split, 0.25, seed=5)
    again = subsample_utterances(split, 0.25, seed=5)
    other = subsample_utterances(split, 0.25, seed=6)
    assert first.utterance_names == again.utterance_names
    assert first.utterance_names != other.utterance_names
    assert first.num_utterances == round(0.25 * split.num_utterances)
    assert first.utterance_names == sorted(first.utterance_names)  # file order kept
    for position, name in enumerate(first.utterance_names):
        original = split.utterance_names.index(name)
        features, labels = first.utterance(position)
        original_features, original_labels = split.utterance(original)
        np.testing.assert_array_equal(features, original_features)
        np.testing.assert_array_equal(labels, original_labels)
    assert subsample_utterances(split, 1.0, seed=5) is split
    assert subsample_utterances(split, 0.001, seed=5).num_utterances == 1
    with pytest.raises(ConfigError, match="subsample fraction"):
        subsample_utterances(split, 0.0, seed=5)


def test_context_out_of_range_is_rejected(tiny_corpus):
    split = load_split(raw_config(tiny_corpus), DEV, progress=False)
    with pytest.raises(ConfigError, match="context_frames must be between 0 and 50, but got context_frames=51"):
        ContextWindows(split, 51, "cpu")


def test_recycled_batches_equal_fresh_batches_when_consumed_in_turn(tiny_corpus):
    # The trainer iterates with recycle=True: each batch must hold the same windows as the fresh-tensor iterator's,
    # and two consecutive batches must not share memory (batch n is only overwritten by batch n + 2).
    split = load_split(raw_config(tiny_corpus), DEV, progress=False)
    windows = ContextWindows(split, 7, "cpu")
    always = AugmentConfig(time_mask_prob=0.5, time_mask_max_frames=3, freq_mask_prob=0.5, freq_mask_max_bands=4)
    fresh = [(x.clone(), y) for x, y in windows.train_batches(97, torch.Generator().manual_seed(0), always)]
    previous = None
    recycled = windows.train_batches(97, torch.Generator().manual_seed(0), always, recycle=True)
    for (x, y), (fresh_x, fresh_y) in zip(recycled, fresh, strict=True):
        torch.testing.assert_close(x, fresh_x, rtol=0, atol=0)
        assert torch.equal(y, fresh_y)
        if previous is not None:
            assert x.data_ptr() != previous.data_ptr()
        previous = x
    evaluated = [x.clone() for x, _ in windows.eval_batches(53, recycle=True)]
    torch.testing.assert_close(torch.cat(evaluated), torch.cat([x for x, _ in windows.eval_batches(53)]), rtol=0, atol=0)
