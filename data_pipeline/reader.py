"""Reading one split of the HW1P2 layout and validating every file on the way.

``ROOT/<split>/mfcc/*.npy`` holds ``(T, F)`` float frames; ``ROOT/<split>/transcript/*.npy`` holds ``(T+2,)`` phoneme
strings framed by ``[SOS]`` and ``[EOS]``; the two are paired by file name and read in sorted order. A split without
a ``transcript/`` folder (test-clean) has features only, and its sorted order is the submission's id order.

Reading is two passes: ``list_split`` pairs the files and stats them (cheap: it decides whether a cache is still
valid), ``scan_headers`` reads only the .npy headers (shapes, dtypes) through memory maps so the total size is known
before any data is read, and ``read_utterance`` loads and checks one utterance's data. Every problem raises a named
``DataError`` subclass; nothing is skipped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
from phonetune.data_pipeline.phonemes import EOS, SOS
from phonetune.errors import what_is_at

logger = logging.getLogger(__name__)

FEATURES_FOLDER = "mfcc"
TRANSCRIPTS_FOLDER = "transcript"


@dataclass(frozen=True)
class FileStat:
    name: str  # file name inside its folder
    size: int  # bytes
    mtime_ns: int  # modification time; with the size, decides whether a cache is stale


@dataclass
class SplitFiles:
    """The paired files of one split, in sorted name order."""

    split: str
    folder: Path
    features: list[FileStat]
    transcripts: list[FileStat] | None  # None when the split has no transcript/ folder

    @property
    def has_labels(self) -> bool:
        return self.transcripts is not None

    @property
    def utterance_names(self) -> list[str]:
        return [Path(stat.name).stem for stat in self.features]

    def feature_path(self, index: int) -> Path:
        return self.folder / FEATURES_FOLDER / self.features[index].name

    def transcript_path(self, index: int) -> Path:
        assert self.transcripts is not None
        return self.folder / TRANSCRIPTS_FOLDER / self.transcripts[index].name


def present_splits(root: str | Path, candidates: list[str]) -> list[str]:
    """The names in ``candidates`` that exist as folders under ``root`` (which must exist)."""
    root = Path(root)
    if not root.is_dir():
        raise MissingSplitError(f"data root must be an existing folder, but {root} {what_is_at(root)}")
    return [name for name in candidates if (root / name).is_dir()]


def nested_root(root: Path, splits: list[str]) -> Path | None:
    """The folder one level below ``root`` that holds one of ``splits``, when ``root`` holds none: a Kaggle
    download unpacks into a folder of its own (``ROOT/11785-f24-hw1p2/train-clean-100``)."""
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and any((child / split).is_dir() for split in splits):
            return child
    return None


def nested_hint(nested: Path) -> str:
    return (f"the splits are one level down, in {nested} (a downloaded archive unpacks into a folder of its own); "
            f"use {nested} as the data root")


def _list_npy(folder: Path) -> list[FileStat]:
    stats = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if not entry.name.endswith(".npy"):
                logger.warning("ignoring %s: only .npy files are utterances", Path(folder) / entry.name)
                continue
            info = entry.stat()
            stats.append(FileStat(entry.name, info.st_size, info.st_mtime_ns))
    return sorted(stats, key=lambda stat: stat.name)


def list_split(root: str | Path, split: str) -> SplitFiles:
    """Pair ``mfcc/`` and ``transcript/`` files by name; raise when a folder is missing or a file is unpaired."""
    root = Path(root)
    if not root.is_dir():
        raise MissingSplitError(f"data root must be an existing folder, but {root} {what_is_at(root)}")
    folder = root / split
    if not folder.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        nested = nested_root(root, [split])
        if nested is not None:
            raise MissingSplitError(
                f"split folder {folder} must exist (layout ROOT/{split}/mfcc/*.npy), but {nested_hint(nested)}")
        raise MissingSplitError(
            f"split folder {folder} must exist (layout ROOT/{split}/mfcc/*.npy), but it was not found; "
            f"folders in {root}: {present}"
        )
    features_folder = folder / FEATURES_FOLDER
    if not features_folder.is_dir():
        raise MissingSplitError(f"split {split!r} must have a {features_folder} folder of .npy files, but it is missing")
    features = _list_npy(features_folder)
    transcripts_folder = folder / TRANSCRIPTS_FOLDER
    transcripts = _list_npy(transcripts_folder) if transcripts_folder.is_dir() else None
    if transcripts is not None:
        feature_names = {stat.name for stat in features}
        transcript_names = {stat.name for stat in transcripts}
        for name in sorted(feature_names - transcript_names):
            raise UnpairedFileError(
                f"every mfcc file needs a transcript of the same name, but {features_folder / name} has no "
                f"{transcripts_folder / name}; restore the transcript or remove the mfcc file"
            )
        for name in sorted(transcript_names - feature_names):
            raise UnpairedFileError(
                f"every transcript needs an mfcc file of the same name, but {transcripts_folder / name} has no "
                f"{features_folder / name}; restore the mfcc file or remove the transcript"
            )
    if not features:
        raise EmptySplitError(f"split {split!r} must hold at least one utterance, but {features_folder} has no .npy files")
    return SplitFiles(split, folder, features, transcripts)


def _open_header(path: Path) -> np.ndarray:
    """Memory-map ``path`` to learn its shape and dtype without reading the data."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CorruptFileError(f"{path} must be a readable .npy array, but it could not be opened: {exc}") from exc


def scan_headers(files: SplitFiles, feature_width: int) -> np.ndarray:
    """Frames per utterance, ``(U,)`` int64, from the .npy headers; checks shapes and dtypes of every file."""
    lengths = np.zeros(len(files.features), dtype=np.int64)
    for index in range(len(files.features)):
        path = files.feature_path(index)
        features = _open_header(path)
        check_feature_shape(path, features, feature_width)
        lengths[index] = features.shape[0]
        del features
        if files.transcripts is not None:
            transcript_path = files.transcript_path(index)
            transcript = _open_header(transcript_path)
            check_transcript_shape(transcript_path, transcript, int(lengths[index]), path)
            del transcript
    if lengths.sum() == 0:
        raise EmptySplitError(f"split {files.split!r} must hold at least one frame, but all its mfcc files are empty")
    return lengths


# Said where a study reads the data; commands that read it for a trained model say what the model needs instead.
FEATURE_WIDTH_HINT = "set [data] feature_width if your features really are a different width"


def check_feature_shape(path: Path, features: np.ndarray, feature_width: int) -> None:
    if features.dtype.kind not in "fiu":
        raise CorruptFileError(f"{path} must hold a float array of mfcc frames, but its dtype is {features.dtype}")
    if features.ndim != 2 or features.shape[1] != feature_width:
        raise FeatureWidthError(
            f"{path} must have shape (frames, {feature_width}), but has shape {features.shape}; {FEATURE_WIDTH_HINT}"
        )


def check_transcript_shape(path: Path, transcript: np.ndarray, frames: int, features_path: Path) -> None:
    if transcript.dtype.kind not in "US":
        raise CorruptFileError(f"{path} must hold an array of phoneme strings, but its dtype is {transcript.dtype}")
    if transcript.ndim != 1 or transcript.shape[0] != frames + 2:
        raise FrameCountMismatchError(
            f"{path} must hold {frames + 2} symbols ([SOS], one label per frame of {features_path.name} "
            f"({frames} frames), [EOS]), but has shape {transcript.shape}"
        )


class LabelLookup:
    """Vectorized symbol -> class index mapping for one phoneme inventory."""

    def __init__(self, phonemes: list[str]) -> None:
        self.phonemes = list(phonemes)
        inventory = np.array(self.phonemes)
        self._order = np.argsort(inventory)
        self._sorted = inventory[self._order]

    def __call__(self, symbols: np.ndarray, path: Path) -> np.ndarray:
        positions = np.searchsorted(self._sorted, symbols).clip(max=len(self._sorted) - 1)
        known = self._sorted[positions] == symbols
        if not known.all():
            frame = int(np.argmin(known))
            raise UnknownPhonemeError(
                f"{path} must use only the {len(self.phonemes)} configured phonemes, but label {frame} is "
                f"{str(symbols[frame])!r}; known symbols: {' '.join(self.phonemes)} "
                f"(set [data] phonemes, e.g. to the seed-46 inventory, if your data uses another set)"
            )
        return self._order[positions].astype(np.int16)


def read_features(path: Path, feature_width: int) -> np.ndarray:
    """One utterance's frames as float32 ``(T, F)``; raises on bad shape, dtype or non-finite values."""
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CorruptFileError(f"{path} must be a readable .npy array, but it could not be read: {exc}") from exc
    check_feature_shape(path, raw, feature_width)
    features = raw.astype(np.float32, copy=False)
    finite = np.isfinite(features)
    if not finite.all():
        frame, channel = np.argwhere(~finite)[0]
        found = raw[frame, channel]
        raise NonFiniteFeatureError(
            f"{path} must hold finite values, but has {int((~finite).sum())} non-finite ones, first {found} at "
            f"frame {frame}, channel {channel}"
            + (" (a float32 overflow)" if np.isfinite(found) else "")
        )
    return features


def read_labels(path: Path, frames: int, lookup: LabelLookup, features_path: Path) -> np.ndarray:
    """One utterance's class indices ``(T,)`` int16, after checking and stripping ``[SOS]``/``[EOS]``."""
    try:
        transcript = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CorruptFileError(
            f"{path} must be a readable .npy array of phoneme strings, but it could not be read: {exc}"
        ) from exc
    check_transcript_shape(path, transcript, frames, features_path)
    if transcript.dtype.kind == "S":
        transcript = transcript.astype(str)
    if transcript[0] != SOS or transcript[-1] != EOS:
        raise FrameCountMismatchError(
            f"{path} must start with {SOS} and end with {EOS}, but starts with {str(transcript[0])!r} and ends "
            f"with {str(transcript[-1])!r}"
        )
    return lookup(transcript[1:-1], path)


def read_utterance(
    files: SplitFiles, index: int, feature_width: int, lookup: LabelLookup
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validated features (float32) and labels (int16, or None without transcripts) of utterance ``index``."""
    features_path = files.feature_path(index)
    features = read_features(features_path, feature_width)
    if files.transcripts is None:
        return features, None
    return features, read_labels(files.transcript_path(index), len(features), lookup, features_path)
