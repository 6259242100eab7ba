"""Atomic file writes: write to a temporary file beside the target, fsync, then rename over it.

A crash, a kill or a full disk in the middle of a write leaves the previous file intact and no partial file under
the target name; the temporary file is removed on failure. The file ends with the permissions a plain ``open()``
would give it (the umask's, or the replaced file's own), not the 0600 of a temporary file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator


def _process_umask() -> int:
    try:  # Linux states it without changing it; os.umask() can only be read by setting it (racy across threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _final_mode(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_process_umask()


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is renamed onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _final_mode(target))
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if exc.filename is None:
            # A failed write() names no file; the target does, so that "no space left" says where.
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write(target: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(handle)`` on a binary handle to a temporary file, then move it onto ``target``."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
    return Path(target)


def atomic_write_text(target: str | Path, text: str) -> Path:
    return atomic_write(target, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(target: str | Path, payload: Any) -> Path:
    return atomic_write_text(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(target: str | Path, payload: Any) -> Path:
    import torch

    return atomic_write(target, lambda handle: torch.save(payload, handle))
