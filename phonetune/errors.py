"""One exception hierarchy for the whole project.

Every error a user can cause (bad data, bad config, a budget that cannot be met, unreachable storage) is a
``PhonetuneError``; the CLI prints its message and exits with status 1 instead of a traceback. Messages say what
must hold, what was found (file, key, value) and what to do.
"""

import errno
from pathlib import Path


class PhonetuneError(Exception):
    """Root of all errors raised on purpose by phonetune."""


class ConfigError(PhonetuneError):
    """A config file or override is invalid: unknown key, wrong type, value out of range."""


class DataError(PhonetuneError):
    """A data root, split or file does not match the HW1P2 layout or contents."""


class BudgetError(PhonetuneError):
    """A wall-clock budget (``phonetune run --budget``) cannot be met."""


class ParamLimitError(PhonetuneError):
    """A model, ensemble or search space cannot fit the parameter limit (``[study] param_limit``, the HW1P2 20M)."""


class StorageError(PhonetuneError):
    """A study storage cannot be reached, or a study does not exist in it."""


class CheckpointError(PhonetuneError):
    """A checkpoint is missing, corrupt, or was made for a different configuration."""


class DiskFullError(PhonetuneError):
    """A write failed because the disk (or the quota) under a checkpoint, cache, export or study database is full."""


# A worker process's exit status when a full disk stopped it (sysexits' EX_TEMPFAIL: free space and try again), so
# the process that started it stops the others and says why rather than going on without trials.
WORKER_DISK_FULL_EXIT = 75


_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXTS = ("database or disk is full", "no space left on device", "disk quota exceeded")


def as_disk_full(exc: BaseException) -> DiskFullError | None:
    """The DiskFullError that ``exc`` (or an exception it was raised from, such as Optuna's wrapper of a SQLAlchemy
    error) amounts to, naming where the disk is full and what to do; None when it is not about a full disk."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and not any(current is earlier for earlier in seen):
        seen.append(current)
        where = ""
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            # the folder: the file itself is often an atomic write's temporary name
            where = f" under {str(current.filename).rsplit('/', 1)[0] or '/'}" if current.filename else ""
        elif not any(text in str(current).lower() for text in _FULL_TEXTS):
            current = current.__cause__ or current.__context__
            continue
        if "database or disk is full" in str(current).lower():
            where = " under the study database"
        detail = " ".join(str(current).split()).split(" (Background on this error")[0][:300]
        return DiskFullError(
            f"the disk{where} is full ({detail}). Kept: every finished trial and every epoch checkpoint written so "
            "far (writes are atomic: no half-written file). Free space there, then run the same command again: an "
            "interrupted trial or run resumes from its last checkpoint"
        )
    return None


def what_is_at(path: Path) -> str:
    """How a path that is not what was expected stands, for messages: not found, or the kind of thing it is."""
    if path.is_dir():
        return "is a folder"
    if path.exists():
        return "is a file" if path.is_file() else "is not a regular file or folder"
    return "was not found"
