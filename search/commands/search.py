"""``phonetune search --config studies/x.toml [--workers N] [--gpus 0,1]``: run a study with N worker processes."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys

from phonetune.errors import ConfigError
from phonetune.search.commands import add_study_arguments
from phonetune.search.config import load_study_config
from phonetune.search.workers import run_search


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search for the best MLP: create the study once and run N parallel workers on it",
        description="Create the study of --config (once; an existing one is resumed), then run --workers worker "
        "processes on its storage until n_trials trials are COMPLETE or PRUNED (or timeout_seconds passes). "
        "Ctrl-C stops the workers and re-queues their running trials; the same command resumes the study.",
    )
    add_study_arguments(parser)
    parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    parser.add_argument("--gpus", default="", metavar="0,1,...", help="pin worker i to GPU gpus[i %% len(gpus)]")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (one log line per trial instead)")
    parser.set_defaults(handler=run)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


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


def run(args: argparse.Namespace) -> int:
    gpus = parse_gpus(args.gpus)  # before anything opens the study or starts a worker
    signal.signal(signal.SIGTERM, _interrupt)
    config = load_study_config(args.config, args.overrides)
    summary = run_search(config, workers=args.workers, gpus=gpus, progress=not args.quiet and sys.stderr.isatty())
    states = ", ".join(f"{count} {state}" for state, count in sorted(summary.states.items())) or "no trials"
    print(f"study {summary.study_name} in {summary.storage_url}: {states}")
    if summary.best_number is not None:
        shown = " ".join(
            f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
            for name, value in sorted(summary.best_params.items())
        )
        print(f"best trial {summary.best_number}: dev accuracy {summary.best_value:.4f}")
        print(f"  {shown}")
    print(f"trial folders: {config.artifacts_path / 'trials'}")
    if summary.n_trials and not summary.reached_target:
        logging.getLogger(__name__).error(
            "the study has %d of %d finished trials; run the same command again to continue",
            summary.finished, summary.n_trials,
        )
        return 1
    return 0
