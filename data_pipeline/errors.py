"""Named data errors: one ``DataError`` subclass per way a data root can be wrong.

Each is raised with a message naming the file (or folder), the value found and what was expected, so a user can fix
the data without reading code. Nothing in the pipeline skips a bad file silently; it raises one of these.
"""

from __future__ import annotations

from phonetune.errors import DataError


class MissingSplitError(DataError):
    """The data root, a split folder, or its ``mfcc/`` folder does not exist."""


class UnpairedFileError(DataError):
    """An mfcc file has no transcript of the same name, or a transcript has no mfcc file."""


class FrameCountMismatchError(DataError):
    """A transcript's label count (after stripping [SOS]/[EOS]) differs from its mfcc frame count, or the markers are
    missing."""


class UnknownPhonemeError(DataError):
    """A transcript holds a symbol that is not in the configured phoneme inventory."""


class FeatureWidthError(DataError):
    """An mfcc array is not two-dimensional with ``feature_width`` columns."""


class NonFiniteFeatureError(DataError):
    """An mfcc array holds NaN or infinity."""


class EmptySplitError(DataError):
    """A split folder holds no utterances (or no frames)."""


class CorruptFileError(DataError):
    """A .npy file cannot be read (truncated, not a numpy file, wrong dtype)."""


__all__ = [
    "CorruptFileError",
    "EmptySplitError",
    "FeatureWidthError",
    "FrameCountMismatchError",
    "MissingSplitError",
    "NonFiniteFeatureError",
    "UnknownPhonemeError",
    "UnpairedFileError",
]
