"""``phonetune train --config RUN.toml --data ROOT --out runs/NAME``: train one configuration (resumable)."""

from __future__ import annotations

import argparse
import json
import sys

from phonetune.cli.commands import add_command
from phonetune.model import load_run_config
from phonetune.model.run_files import BEST_CHECKPOINT, CURVES_FILE, METRICS_FILE
from phonetune.model.trainer import Trainer


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "train",
        description="Train the run config in --config on --data. Writes config.toml, metrics.json, last.pt, "
        "best.pt and curves.html to --out; re-running the same command resumes from last.pt.",
    )
    parser.add_argument("--config", required=True, metavar="RUN.toml", help="run config ([data], [model], [train])")
    parser.add_argument("--data", metavar="ROOT", help="data root (overrides [data] root)")
    parser.add_argument("--out", required=True, metavar="DIR", help="run folder, e.g. runs/starter")
    parser.add_argument("--epochs", type=int, help="overrides [train] epochs")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set train.lr=3e-4 (repeatable; applied after --data/--epochs)",
    )
    parser.add_argument("--overwrite", action="store_true", help="start over in --out even if it holds another run")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    overrides = []
    if args.data is not None:
        overrides.append(f"data.root={json.dumps(args.data)}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    run_config = load_run_config(args.config, overrides + list(args.overrides))
    trainer = Trainer(run_config, args.out, progress=not args.quiet and sys.stderr.isatty(), overwrite=args.overwrite)
    trainer.setup()
    try:
        result = trainer.train()
    finally:
        trainer.cleanup()
    last = result.history[-1] if result.history else None
    print(f"parameters: {result.param_count:,}")
    if last is not None:
        print(f"last epoch {last.epoch}: dev acc {last.dev_acc:.4f}, {last.frames_per_s:,.0f} frames/s")
    print(f"best dev acc {result.best_dev_acc:.4f} at epoch {result.best_epoch}")
    print(f"wrote {result.out_dir / BEST_CHECKPOINT}, {result.out_dir / METRICS_FILE}, {result.out_dir / CURVES_FILE}")
    return 0
