"""``phonetune report --config STUDY.toml --out report.html``: one self-contained plotly page about the study."""

from __future__ import annotations

import argparse

from phonetune.search.commands import add_study_arguments
from phonetune.search.config import load_study_config
from phonetune.search.export import open_studies
from phonetune.search.report import write_report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write one self-contained HTML page with the study's plots",
        description="Optimization history, hyperparameter importances, parallel coordinates, slices, learning "
        "curves of every trial (pruned ones cut short), accuracy against parameter count with the budget line, "
        "and the full-data fidelity when trials were promoted. plotly.js is inlined: the page opens offline.",
    )
    add_study_arguments(parser)
    parser.add_argument("--out", default="report.html", metavar="HTML", help="page to write")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_study_config(args.config, args.overrides)
    search_study, full_study = open_studies(config)
    path = write_report(search_study, full_study, args.out, param_budget=config.param_budget)
    print(f"report: {path.resolve()}")
    return 0
