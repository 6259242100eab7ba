"""``phonetune demo-data --out DIR``: synthesize the flite demo corpus in the HW1P2 layout."""

from __future__ import annotations

import argparse
import json
import sys

from phonetune.cli.commands import add_command
from phonetune.data_pipeline.demo_corpus import DemoCorpusConfig, build_demo_corpus, format_summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = DemoCorpusConfig()
    parser = add_command(
        subparsers, "demo-data",
        description="Synthesize speech with flite (several voices, rates, pitches, noise and channels), compute "
        "28 log-mel bands every 10 ms and label each frame from flite's phone timings. Re-running with the same "
        "parameters on a finished corpus does nothing.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="corpus root to create (e.g. data/demo)")
    parser.add_argument("--train", type=int, default=defaults.train_utterances, help="training utterances")
    parser.add_argument("--dev", type=int, default=defaults.dev_utterances, help="dev-clean utterances")
    parser.add_argument("--test", type=int, default=defaults.test_utterances, help="test-clean utterances")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="corpus seed (same seed, same bytes)")
    parser.add_argument("--workers", type=int, default=0, help="parallel flite runs (0: one per CPU)")
    parser.add_argument("--force", action="store_true", help="replace a different corpus or folder at --out")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = DemoCorpusConfig(
        train_utterances=args.train,
        dev_utterances=args.dev,
        test_utterances=args.test,
        seed=args.seed,
        workers=args.workers,
    )
    summary = build_demo_corpus(args.out, config, progress=sys.stderr.isatty(), force=args.force)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0
