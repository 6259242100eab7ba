"""``phonetune search --config studies/x.toml [--workers N] [--gpus 0,1]``: run a study with N worker processes."""

from __future__ import annotations

import argparse
import logging
import sys

from phonetune.cli.commands import add_command, interrupt_on_sigterm, load_study_args
from phonetune.cli.hosts import parse_gpus
from phonetune.search.supervisor import run_search


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "search", study=True,
        description="Create the study of --config (once; an existing one is resumed), then run --workers worker "
        "processes on its storage until n_trials trials are COMPLETE or PRUNED (or timeout_seconds passes). "
        "Ctrl-C stops the workers and re-queues their running trials; the same command resumes the study.",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    parser.add_argument("--gpus", default="", metavar="0,1,...", help="pin worker i to GPU gpus[i %% len(gpus)]")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (one log line per trial instead)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    gpus = parse_gpus(args.gpus)  # before anything opens the study or starts a worker
    interrupt_on_sigterm()
    config = load_study_args(args, needs_data=True)
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
    print(f"trial folders: {config.paths.artifacts_path / 'trials'}")
    if summary.n_trials and not summary.reached_target:
        logging.getLogger(__name__).error(
            "the study has %d of %d finished trials; run the same command again to continue",
            summary.finished, summary.n_trials,
        )
        return 1
    return 0
