"""``phonetune promote --config STUDY.toml --top K``: retrain the K best search trials on the full training data."""

from __future__ import annotations

import argparse
import sys

from phonetune.cli.commands import add_command, load_study_args
from phonetune.search.promote import format_promotion, promote_top_trials


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "promote", study=True,
        description="Retrain the K best COMPLETE search trials with [fidelity] full_train_fraction and full_epochs, "
        "as trials of the study <name>-full in the same storage (each pointing to its source trial), and report "
        "the Spearman rank correlation between search and full-data accuracy. Trials already promoted are kept; "
        "an interrupted one resumes from its last checkpoint.",
    )
    parser.add_argument(
        "--top", type=int, default=4, metavar="K",
        help="how many of the best trials to promote; the search-vs-full rank correlation needs several (default 4)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_study_args(args)
    result = promote_top_trials(config, args.top, progress=sys.stderr.isatty())
    print(format_promotion(result))
    return 0
