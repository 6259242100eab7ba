"""This host's GPUs, as every command that launches worker processes sees them (``phonetune search``, ``run``).

``parse_gpus("0,1")`` checks ``--gpus`` against the CUDA devices of this host before anything starts: each worker
gets ``CUDA_VISIBLE_DEVICES=<index>``, so an index that does not exist would fail only later, in a worker.
"""

from __future__ import annotations

import os
import subprocess
import sys

from phonetune.errors import ConfigError


def host_gpu_count() -> int:
    """CUDA devices on this host, as the indices ``--gpus`` takes (each worker gets CUDA_VISIBLE_DEVICES=<index>).

    When this shell already sets CUDA_VISIBLE_DEVICES, torch here sees only those devices, while the workers' own
    CUDA_VISIBLE_DEVICES replaces it; so the count comes from a child process without it.
    """
    if "CUDA_VISIBLE_DEVICES" not in os.environ:
        import torch

        return int(torch.cuda.device_count())
    env = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    try:
        return int(probe.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return 0


def parse_gpus(text: str, count: int | None = None) -> list[str]:
    """``--gpus 0,1,3`` as ["0", "1", "3"]; ConfigError naming the flag unless every entry is a GPU of this host."""
    entries = [gpu.strip() for gpu in text.split(",") if gpu.strip()]
    if not entries:
        return []
    count = host_gpu_count() if count is None else count
    if count == 0:
        import torch

        build = "torch here is a CPU-only build" if torch.version.cuda is None else "torch.cuda.device_count() is 0"
        existing = f"this host has no CUDA devices ({build})"
        advice = "--gpus needs CUDA devices: drop --gpus to run CPU workers, or run the search on a GPU host"
    else:
        existing = f"this host has {count} CUDA device{'s' if count != 1 else ''}: {','.join(map(str, range(count)))}"
        advice = f"pass indices among {','.join(map(str, range(count)))}, e.g. --gpus {','.join(map(str, range(count)))}"
    not_indices = [gpu for gpu in entries if not (gpu.isascii() and gpu.isdigit())]
    if not_indices:
        raise ConfigError(
            f"--gpus must be a comma-separated list of GPU indices such as 0,1,2,3, but got {text!r} "
            f"({', '.join(repr(gpu) for gpu in not_indices)} is not an index); {existing}; {advice}"
        )
    if count == 0:
        raise ConfigError(f"--gpus {text} names GPU {', '.join(entries)}, but {existing}; {advice}")
    missing = sorted({gpu for gpu in entries if int(gpu) >= count}, key=int)
    if missing:
        raise ConfigError(
            f"--gpus {text} names GPU {', '.join(missing)}, which {'does' if len(missing) == 1 else 'do'} not exist: "
            f"{existing}; {advice}"
        )
    return [str(int(gpu)) for gpu in entries]
