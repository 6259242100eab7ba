"""``phonetune leaderboard --config STUDY.toml``: the study's final models, best on dev first."""

from __future__ import annotations

import argparse

from phonetune.cli.commands import add_command, load_study_args
from phonetune.results.leaderboard import format_leaderboard, leaderboard
from phonetune.search.study import open_studies


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "leaderboard", study=True,
        description="One row per full-data run and per chosen ensemble: parameters, epochs (fractional), wall time, "
        "dev accuracy, test accuracy when the test split has labels, and the warm start or search trial each came "
        "from; the final model is marked.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    search_study, full_study = open_studies(load_study_args(args))
    print(format_leaderboard(leaderboard(search_study, full_study)))
    return 0
