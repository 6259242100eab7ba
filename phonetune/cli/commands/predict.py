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
    # A job's submission may hold its sequence decode's labels ([decode] mode = "viterbi"); these are the network's.
    print(f"wrote {frames:,} predictions to {path}: each frame's argmax, the network's own labels (a job "
          "writes its sequence decode's labels, when it made them, in a file of their own beside its submission)")
    return 0
