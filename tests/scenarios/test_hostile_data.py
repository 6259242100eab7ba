"""Hostile and broken data: each case raises a named error naming the file, and the cache already built survives.

Every test starts from a tiny corpus whose training split is already cached, damages one thing on disk the way a
bad copy, a bad export or a full disk would, and checks both halves of the promise: the error says what is wrong
and where, and nothing stored before (the cache's files, their bytes) is lost or half-overwritten.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from corpus import TRAIN, write_tiny_corpus
from shared import REPO, fill_disk

from phonetune.data_pipeline import (
    CorruptFileError,
    DataConfig,
    FrameCountMismatchError,
    UnknownPhonemeError,
    UnpairedFileError,
    load_split,
)


def _snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


class CachedCorpus:
    """A tiny corpus with its training split cached, and what that cache held."""

    def __init__(self, tmp_path: Path, cache_dir: Path | None = None) -> None:
        self.corpus = write_tiny_corpus(tmp_path / "data")
        self.pristine = tmp_path / "original"  # the files as written, to undo any damage
        shutil.copytree(self.corpus.root, self.pristine)
        self.cache_dir = cache_dir or tmp_path / "cache"
        self.config = DataConfig(root=str(self.corpus.root), cache_dir=str(self.cache_dir))
        train = load_split(self.config, TRAIN, progress=False)
        self.features = np.array(train.features)
        self.labels = np.array(train.labels)
        self.cache_files = _snapshot(self.cache_dir)

    def mfcc(self, index: int = 0) -> Path:
        return self.corpus.root / TRAIN / "mfcc" / f"{self.corpus.names[TRAIN][index]}.npy"

    def transcript(self, index: int = 0) -> Path:
        return self.corpus.root / TRAIN / "transcript" / f"{self.corpus.names[TRAIN][index]}.npy"

    def assert_cache_untouched(self) -> None:
        assert _snapshot(self.cache_dir) == self.cache_files, "the existing cache was changed"

    def assert_reloads_after(self, restore) -> None:
        """Undo the damage, then the split loads again with exactly the original contents."""
        restore()
        train = load_split(self.config, TRAIN, progress=False)
        np.testing.assert_array_equal(np.asarray(train.features), self.features)
        np.testing.assert_array_equal(np.asarray(train.labels), self.labels)


@pytest.fixture
def cached(tmp_path) -> CachedCorpus:
    return CachedCorpus(tmp_path)


def _damage(cached: CachedCorpus, damage: str) -> tuple[Path, type, list[str]]:
    """Damage one file of the cached corpus as ``damage`` says; (the file to restore, the error, texts its message
    must hold)."""
    mfcc, transcript = cached.mfcc(3), cached.transcript(3)
    frames = cached.corpus.frames[TRAIN][3]
    original = mfcc.read_bytes()
    if damage == "truncated":  # a copy cut short, inside the data
        mfcc.write_bytes(original[: len(original) // 2])
        return mfcc, CorruptFileError, [str(mfcc), "must be a readable .npy array"]
    if damage == "garbage_header":  # the .npy magic and header overwritten, the data kept
        mfcc.write_bytes(b"\x00GARBAGE" * 4 + original[32:])
        return mfcc, CorruptFileError, [str(mfcc), "must be a readable .npy array"]
    if damage == "not_numpy":
        mfcc.write_bytes(b"not a numpy file at all")
        return mfcc, CorruptFileError, [str(mfcc), "must be a readable .npy array"]
    if damage == "pickled_objects":  # a .npy that would need unpickling to read
        np.save(mfcc, np.array([{"frames": 1}], dtype=object), allow_pickle=True)
        return mfcc, CorruptFileError, [str(mfcc)]
    symbols = np.load(transcript)
    if damage == "unknown_phoneme":
        symbols = symbols.astype("<U8")
        symbols[5] = "+NOISE+"  # not in the 40-phoneme inventory
        np.save(transcript, symbols)
        return transcript, UnknownPhonemeError, [f"{transcript} must use only the 40 configured phonemes",
                                                 "label 4 is '+NOISE+'", "seed-46"]
    if damage == "one_label_short":  # one frame's label dropped, [SOS]/[EOS] kept
        np.save(transcript, np.concatenate([symbols[:3], symbols[4:]]))
        return transcript, FrameCountMismatchError, [f"{transcript} must hold {frames + 2} symbols",
                                                     f"({frames} frames)", f"has shape ({frames + 1},)"]
    if damage == "one_label_extra":
        np.save(transcript, np.concatenate([symbols[:-1], ["AA", "[EOS]"]]))
        return transcript, FrameCountMismatchError, [f"{transcript} must hold {frames + 2} symbols",
                                                     f"has shape ({frames + 3},)"]
    if damage == "transcript_missing":
        transcript.unlink()
        return transcript, UnpairedFileError, [f"{mfcc} has no {transcript}", "restore the transcript"]
    assert damage == "mfcc_missing"
    mfcc.unlink()
    return mfcc, UnpairedFileError, [f"{transcript} has no {mfcc}", "restore the mfcc file"]


@pytest.mark.parametrize("damage", ["truncated", "garbage_header", "not_numpy", "pickled_objects", "unknown_phoneme",
                                    "one_label_short", "one_label_extra", "transcript_missing", "mfcc_missing"])
def test_a_damaged_data_file_is_a_named_error_naming_it_and_the_cache_survives(cached, damage):
    damaged, error, expected = _damage(cached, damage)
    original = cached.pristine / damaged.relative_to(cached.corpus.root)
    with pytest.raises(error) as caught:
        load_split(cached.config, TRAIN, progress=False)
    for text in expected:
        assert text in str(caught.value), f"{text!r} not in the {error.__name__} message: {caught.value}"
    cached.assert_cache_untouched()
    cached.assert_reloads_after(lambda: damaged.write_bytes(original.read_bytes()))


def test_corrupted_cache_labels_fail_their_checksum_and_are_rebuilt(cached, caplog):
    (labels_file,) = cached.cache_dir.rglob("*.labels.npy")
    raw = bytearray(labels_file.read_bytes())
    raw[-7] ^= 0x5A  # one flipped byte in the data: same size, so only the checksum can tell
    labels_file.write_bytes(bytes(raw))

    with caplog.at_level(logging.WARNING, logger="phonetune.data_pipeline"):
        train = load_split(cached.config, TRAIN, progress=False)
    assert any("corrupted" in record.getMessage() and labels_file.name in record.getMessage()
               for record in caplog.records)
    # The corrupted labels are never served: the rebuilt cache holds the original ones again.
    np.testing.assert_array_equal(np.asarray(train.labels), cached.labels)
    np.testing.assert_array_equal(np.asarray(train.features), cached.features)
    assert _snapshot(cached.cache_dir) == cached.cache_files


def test_full_disk_while_rebuilding_the_cache_is_a_data_error_and_the_old_cache_survives(tmp_path, small_disk):
    folder, resize = small_disk
    resize("64m")
    cached = CachedCorpus(tmp_path, cache_dir=folder / "cache")
    # A changed data file makes the cache stale, so the next run must write a new one, on a disk with 16 KiB left.
    path = cached.mfcc(0)
    original = path.read_bytes()
    features = np.load(path)
    np.save(path, (features + 0.5).astype(np.float32))
    filler = fill_disk(folder, leave_bytes=16 * 1024)
    command = [
        sys.executable, "-m", "phonetune.cli", "train", "--config", str(REPO / "studies" / "starter.toml"),
        "--data", str(cached.corpus.root), "--out", str(tmp_path / "run"), "--epochs", "1", "--quiet",
        "--set", f"data.cache_dir={cached.cache_dir}", "--set", "data.context_frames=1",
        "--set", 'train.device="cpu"',
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1, result.stderr
    assert "cache could not be written" in result.stderr and "No space left on device" in result.stderr, result.stderr
    assert str(cached.cache_dir) in result.stderr
    # meta.json is the commit point and was never replaced; no half-written array sits under a cache file name.
    cached.assert_cache_untouched()
    leftovers = [item.name for item in cached.cache_dir.rglob(".*.tmp")]
    assert not leftovers, f"temporary files left in {cached.cache_dir}: {leftovers}"
    # Space freed, the same command caches the changed data and trains; the original data loads as before.
    filler.unlink()
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    cached.assert_reloads_after(lambda: path.write_bytes(original))


@pytest.mark.parametrize("damage", ["nan", "unknown_phoneme"])
def test_bad_data_through_train_is_one_named_error_and_writes_no_checkpoint(tmp_path, damage):
    corpus = write_tiny_corpus(tmp_path / "data")
    name = corpus.names[TRAIN][3]
    if damage == "nan":
        path = corpus.root / TRAIN / "mfcc" / f"{name}.npy"
        frames = np.load(path)
        frames[5, 2] = np.nan
        np.save(path, frames)
        expected = ["non-finite", path.name]
    else:
        path = corpus.root / TRAIN / "transcript" / f"{name}.npy"
        labels = np.load(path)
        labels[4] = "XX"
        np.save(path, labels)
        expected = ["XX", path.name]
    out = tmp_path / "run"
    command = [sys.executable, "-m", "phonetune.cli", "train", "--config", str(REPO / "studies/starter.toml"),
               "--data", str(corpus.root), "--out", str(out), "--epochs", "1", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("error:") == 1, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()
