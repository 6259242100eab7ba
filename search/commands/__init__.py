"""One module per ``phonetune`` subcommand; each exposes ``add_parser(subparsers)`` (see ``phonetune.search.cli``)."""

from __future__ import annotations

import argparse


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """The two arguments every study command takes: the study file and its ``--set`` overrides (``args.overrides``)."""
    parser.add_argument("--config", required=True, metavar="STUDY.toml", help="study config, e.g. studies/demo.toml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one study config value, e.g. --set study.n_trials=8 or --set data.root=ROOT "
        "(workers of one study must use the same overrides)",
    )
