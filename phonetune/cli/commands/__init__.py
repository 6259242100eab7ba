"""One module per ``phonetune`` subcommand, and what they share.

``COMMANDS`` lists each command with its module here and the one line ``phonetune --help`` shows; each module
exposes ``add_parser(subparsers)``, which registers its arguments (``add_command``) and sets ``handler`` (a function
taking the parsed namespace and returning an exit code). ``phonetune.cli.main`` imports a module only when its
command runs, so this package's top level imports nothing heavy.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from phonetune import interrupts

if TYPE_CHECKING:
    from phonetune.search.config import StudyConfig

# command name -> (module under phonetune.cli.commands, the one line `phonetune --help` shows for it)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "the whole job under one wall-clock budget: search, promote, final model, submission, sheet"),
    "plan": ("plan", "print the plan `run` would make for a budget, on this machine or from another's speed line"),
    "inspect": ("inspect_data", "validate a data root (HW1P2 layout) and print per-split counts"),
    "demo-data": ("demo_data", "synthesize a small HW1P2-layout corpus with flite"),
    "train": ("train", "train one MLP configuration and write checkpoints, metrics and curves"),
    "predict": ("predict", "predict every frame of a split with a checkpoint and write the id,label CSV"),
    "score": ("score", "score a submission CSV against held-apart transcripts"),
    "search": ("search", "search for the best MLP: create the study once and run N parallel workers on it"),
    "worker": ("worker", "run trials of an existing study until its trial target or time limit (one process, one GPU)"),
    "promote": ("promote", "retrain the best search trials on the full data, in the linked <name>-full study"),
    "ensemble": ("ensemble", "average the promoted runs that fit the parameter limit best together on dev"),
    "leaderboard": ("leaderboard", "print the final models (full-data runs, ensembles) best on dev first, with their origin"),
    "export": ("export", "write the ablation sheet: one CSV row per trial, plus per-value marginals"),
    "report": ("report", "write one self-contained HTML page with the study's plots"),
    "dashboard": ("dashboard", "serve optuna-dashboard on the study's storage (loopback only by default)"),
    "retrain": ("retrain", "retrain the winner on all training data, write and score the test submission"),
}


def add_command(
    subparsers: argparse._SubParsersAction, name: str, description: str, *, study: bool = False
) -> argparse.ArgumentParser:
    """Register command ``name`` with its ``COMMANDS`` summary and ``description``; ``study=True`` adds the study
    arguments (``add_study_arguments``)."""
    parser = subparsers.add_parser(name, help=COMMANDS[name][1], description=description)
    if study:
        add_study_arguments(parser)
    return parser


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """The two arguments every study command takes: the study file and its ``--set`` overrides (``args.overrides``)."""
    parser.add_argument("--config", required=True, metavar="STUDY.toml", help="study config, e.g. studies/demo.toml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one study config value, e.g. --set study.n_trials=8 or --set data.root=ROOT "
        "(workers of one study must use the same overrides)",
    )


def load_study_args(args: argparse.Namespace, *, needs_data: bool = False) -> "StudyConfig":
    """The study config the study arguments name: ``--config`` with its ``--set`` overrides, parsed once.
    ``needs_data``: the command reads the data, so a data root that is not there is refused now, naming the
    setting that gave it and the flag that changes it (a study command has no ``--data``)."""
    from phonetune.errors import DataError, what_is_at
    from phonetune.search.config import load_study_config

    config = load_study_config(args.config, args.overrides)
    root = Path(config.data.root)
    if needs_data and not root.is_dir():
        given = next((f"--set {text}" for text in reversed(args.overrides) if text.split("=")[0].strip() == "data.root"),
                     f"[data] root in {args.config}")
        raise DataError(f"the data root must be an existing folder, but {root} ({given}) {what_is_at(root)}; give the "
                        "folder that holds train-clean-100/ with --set data.root=ROOT")
    return config


def interrupt_on_sigterm() -> None:
    """Treat SIGTERM (a kill, a scheduler's stop) as Ctrl-C: the command stops the way it stops on SIGINT, re-queueing
    its running trials, instead of dying mid-write."""
    interrupts.install(signal.SIGTERM)
