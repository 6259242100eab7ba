"""Scaffolding the tests share: the repository root, a free port, one math thread per process."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]

# Worker subprocesses started by tests: one math thread each, since the test machine's two cores are shared by every
# process (workers, the test itself, other tests).
ONE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
