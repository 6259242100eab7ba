"""``phonetune inspect --data ROOT [--json]``: validate a data root and summarize each split."""

from __future__ import annotations

import argparse
import json
import sys

from phonetune.cli.commands import add_command
from phonetune.data_pipeline import DataConfig, named_inventory
from phonetune.data_pipeline.inspect import format_report, has_errors, inspect_root
from phonetune.data_pipeline.phonemes import INVENTORIES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "inspect",
        description="Read every split under ROOT the way training will and report counts and the first error.",
    )
    parser.add_argument("--data", required=True, metavar="ROOT", help="data root holding <split>/mfcc/*.npy")
    parser.add_argument("--json", action="store_true", help="print one JSON object keyed by split name")
    parser.add_argument("--feature-width", type=int, default=DataConfig.feature_width, help="expected mfcc columns")
    parser.add_argument(
        "--inventory", choices=sorted(INVENTORIES), default="hw1p2-40", help="phoneme inventory of the transcripts"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = DataConfig(root=args.data, feature_width=args.feature_width, phonemes=named_inventory(args.inventory))
    report = inspect_root(args.data, config, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(args.data, report))
    return 1 if has_errors(report) else 0
