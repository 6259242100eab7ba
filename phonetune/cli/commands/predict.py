"""``phonetune predict --checkpoint PATH --data ROOT --out submission.csv``: the Kaggle CSV for a split."""

from __future__ import annotations

import argparse
import sys

from phonetune.cli.commands import add_command
from phonetune.model.inference import predict_checkpoint


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "predict",
        description="Rebuild the model from --checkpoint (it carries its config) and write one row per frame of "
        "--split, in sorted file order.",
    )
    parser.add_argument("--checkpoint", required=True, metavar="PATH", help="best.pt or last.pt of a run")
    parser.add_argument("--data", required=True, metavar="ROOT", help="data root holding the split")
    parser.add_argument("--split", default="test-clean", help="split folder under ROOT (default: test-clean)")
    parser.add_argument("--out", required=True, metavar="CSV", help="submission file to write")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when present)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path, frames = predict_checkpoint(
        args.checkpoint, args.data, args.split, args.out, device=args.device, progress=sys.stderr.isatty()
    )
    print(f"wrote {frames:,} predictions to {path}")
    return 0
