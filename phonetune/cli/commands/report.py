"""``phonetune report --config STUDY.toml [--out report.html]``: one self-contained plotly page about the study."""

from __future__ import annotations

import argparse

from phonetune.cli.commands import add_command, load_study_args
from phonetune.results.report import write_report
from phonetune.search.study import open_studies


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "report", study=True,
        description="Optimization history, hyperparameter importances, parallel coordinates, slices, learning "
        "curves of every trial (pruned ones cut short), accuracy against parameter count with the parameter limit's line, "
        "and the full-data fidelity when trials were promoted. plotly.js is inlined: the page opens offline.",
    )
    parser.add_argument("--out", default=None, metavar="HTML",
                        help="page to write (default: report.html in the study's artifacts folder, beside its runs)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_study_args(args)
    search_study, full_study = open_studies(config)
    out = args.out if args.out is not None else config.paths.artifacts_path / "report.html"
    path = write_report(search_study, full_study, out, param_limit=config.param_limit, space=config.space)
    print(f"report: {path.resolve()}")
    return 0
