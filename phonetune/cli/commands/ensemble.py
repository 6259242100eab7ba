"""``phonetune ensemble --config STUDY.toml [--max-members M]``: the promoted runs that do best together on dev."""

from __future__ import annotations

import argparse
import sys

from phonetune.cli.commands import add_command, load_study_args
from phonetune.search.final_model import build_final_model, format_final_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "ensemble", study=True,
        description="Predict dev with every promoted run's best.pt, pick members by greedy forward selection of "
        "their averaged probabilities while their summed parameters fit the limit (the HW1P2 20M rule counts an "
        "ensemble together), keep the ensemble only when it beats the best single run on dev, then write the test "
        "submission (scored when test labels exist) and record the choice in the <name>-full study.",
    )
    parser.add_argument("--max-members", type=int, default=4, metavar="M", help="most runs averaged together")
    # --param-budget is the option's old name, still accepted.
    parser.add_argument("--param-limit", "--param-budget", dest="param_limit", type=int, default=None,
                        help="parameters of all members together (default: the study's [study] param_limit)")
    parser.add_argument("--out", default=None, help="folder of the submission (default: <artifacts>/ensemble)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_study_args(args)
    result = build_final_model(
        config, max_members=args.max_members, param_limit=args.param_limit, out_dir=args.out,
        progress=sys.stderr.isatty(),
    )
    print(format_final_model(result))
    return 0
