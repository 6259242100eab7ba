"""``phonetune score --submission submission.csv --labels DIR [--report DIR]``: frame accuracy of a submission."""

from __future__ import annotations

import argparse

from phonetune.cli.commands import add_command
from phonetune.data_pipeline import named_inventory
from phonetune.data_pipeline.phonemes import INVENTORIES
from phonetune.model import score_submission, write_score_report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "score",
        description="Compare each row of --submission with the transcripts under --labels (the folder holding "
        "transcript/*.npy, e.g. ROOT/test-clean-labels) and print the frame accuracy.",
    )
    parser.add_argument("--submission", required=True, metavar="CSV", help="id,label file from phonetune predict")
    parser.add_argument("--labels", required=True, metavar="DIR", help="folder holding transcript/*.npy")
    parser.add_argument("--report", metavar="DIR", help="also write per_phoneme.csv, confusion.html, score.json")
    parser.add_argument("--inventory", default="hw1p2-40", choices=sorted(INVENTORIES), help="phoneme inventory")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    report = score_submission(args.submission, args.labels, named_inventory(args.inventory))
    print(f"accuracy: {report.accuracy:.4f} ({report.frames:,} frames)")
    if args.report:
        for path in write_score_report(report, args.report):
            print(f"wrote {path}")
    return 0
