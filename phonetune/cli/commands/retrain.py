"""``phonetune retrain --config STUDY.toml [--trial N|best] [--with-dev] [--out DIR]``: the final model."""

from __future__ import annotations

import argparse
import sys

from phonetune.cli.commands import add_command, load_study_args
from phonetune.search.retrain import retrain_winner


def _trial_choice(text: str) -> int | None:
    if text == "best":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a trial number or 'best', but got {text!r}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "retrain", study=True,
        description="Retrain the best full-data trial (or, before promotion, the best search trial; --trial N "
        "picks search trial N) on every training utterance for [fidelity] full_epochs, write submission.csv for "
        "the test split, score it when ROOT/<test_split>-labels exists, and write summary.json.",
    )
    parser.add_argument("--trial", type=_trial_choice, default=None, metavar="N|best", help="search trial to retrain")
    parser.add_argument("--with-dev", action="store_true", help="also train on the dev split (final submission)")
    parser.add_argument("--out", default=None, metavar="DIR", help="run folder (default <artifacts>/retrain/...)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_study_args(args)
    result = retrain_winner(
        config, trial_number=args.trial, with_dev=args.with_dev, out_dir=args.out, progress=sys.stderr.isatty()
    )
    print(f"winner:      {result.winner.reason}, {result.param_count:,} parameters")
    print(f"dev accuracy {result.dev_accuracy:.4f}" + (" (dev was trained on)" if args.with_dev else ""))
    print(f"checkpoint:  {result.checkpoint}")
    print(f"submission:  {result.submission}")
    if result.test_accuracy is None:
        print("test accuracy: not scored (no test labels)")
    else:
        print(f"test accuracy: {result.test_accuracy:.4f}")
    print(f"summary:     {result.summary_path}")
    return 0
