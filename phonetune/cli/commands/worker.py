"""``phonetune worker --config studies/x.toml``: join a study from another shell or machine and run its trials."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from phonetune.cli.commands import add_command, interrupt_on_sigterm, load_study_args
from phonetune.errors import WORKER_DISK_FULL_EXIT, DiskFullError
from phonetune.search import space_sizes
from phonetune.search.worker import run_worker


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "worker", study=True,
        description="Join the study of --config on its storage (a PostgreSQL URL lets workers on several machines "
        "share it) and run trials until the study has n_trials COMPLETE or PRUNED trials. Pin a GPU with "
        "CUDA_VISIBLE_DEVICES. The study must exist (phonetune search creates it) unless --create is given.",
    )
    parser.add_argument(
        "--worker-index", type=int, default=None,
        help="offsets the sampler seed so workers draw different trials (default: derived from the process id)",
    )
    parser.add_argument("--create", action="store_true", help="create the study when it does not exist yet")
    parser.add_argument("--quiet", action="store_true",
                        help="log warnings only, and not the config's (phonetune search shows those and the trials)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.quiet:
        logging.getLogger("phonetune").setLevel(logging.WARNING)
        # Started by `phonetune search` or `run`, which loaded this same config and printed its warnings once.
        logging.getLogger(space_sizes.__name__).setLevel(logging.ERROR)
    interrupt_on_sigterm()
    config = load_study_args(args, needs_data=True)
    worker_index = args.worker_index if args.worker_index is not None else os.getpid() % 100_000
    try:
        summary = run_worker(config, worker_index=worker_index, create=args.create)
    except DiskFullError as exc:
        print(f"phonetune worker: error: {exc}", file=sys.stderr)
        return WORKER_DISK_FULL_EXIT
    if not args.quiet:
        print(f"worker {worker_index}: {len(summary.trial_states)} trials run; stopped because {summary.stop_reason}")
    return 0
