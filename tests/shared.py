"""Scaffolding the tests share: the repository root, a free port, one math thread per process, a line read with a
timeout, a disk filled up."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from pathlib import Path
from typing import IO, Iterator

REPO = Path(__file__).resolve().parents[1]

# Worker subprocesses started by tests: one math thread each, since the test machine's two cores are shared by every
# process (workers, the test itself, other tests).
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now; another process may take it before the caller binds
    it, so a caller that cannot be handed a bound socket (a PostgreSQL server: ``postgres.py``) retries another port.
    A server of ours binds port 0 and says which port it got; a port that must stay closed is a socket the test
    binds and holds without listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def readline_within(stream: IO, timeout: float, what: str) -> str:
    """The next line of a subprocess's pipe; AssertionError naming ``what`` when none comes within ``timeout``
    seconds. A thread reads it, so a process that never writes cannot hang the test (the caller then kills the
    process, which ends the read)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), name="readline", daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"{what} printed no line within {timeout:.0f} s") from None


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core machine run an order of magnitude faster without intra-op threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fill_disk(folder: Path, leave_bytes: int = 0) -> Path:
    """Fill the file system under ``folder`` with a file ``folder/filler`` until ``leave_bytes`` (rounded to whole
    blocks) or nothing is left; deleting the file frees the space again."""
    filler = folder / "filler"
    stats = os.statvfs(folder)
    to_write = max(0, stats.f_bavail * stats.f_frsize - leave_bytes)
    with open(filler, "wb", buffering=0) as handle:
        try:
            while to_write > 0:
                to_write -= handle.write(b"\0" * min(to_write, 1 << 16))
        except OSError:
            pass  # the disk is full now
    return filler
