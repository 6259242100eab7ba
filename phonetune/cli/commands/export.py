"""``phonetune export --config STUDY.toml [--out ablation_sheet.csv]``: the per-trial ablation sheet and marginals."""

from __future__ import annotations

import argparse

from phonetune.cli.commands import add_command, load_study_args
from phonetune.results.export import write_ablation_sheet
from phonetune.search.study import open_studies


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "export", study=True,
        description="One row per trial of the study and of its linked full-data study (number, state, fidelity, "
        "every hyperparameter, param_count, best dev accuracy, epoch of pruning, epochs run, wall time, frames/s), "
        "and beside it <out>_marginals.csv: per hyperparameter value, the trial count and the mean and best dev "
        "accuracy, and <out>_changes.csv: each single change the study compared (a trial that moved one "
        "hyperparameter of another, and the difference). The files are replaced atomically.",
    )
    parser.add_argument("--out", default="ablation_sheet.csv", metavar="CSV", help="sheet path")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_study_args(args)
    search_study, full_study = open_studies(config)
    result = write_ablation_sheet(search_study, full_study, args.out)
    print(f"ablation sheet: {result.sheet_path} ({result.trial_count} trials, {result.full_trial_count} full-data)")
    print(f"marginals:      {result.marginals_path}")
    print(f"changes:        {result.changes_path} (each single change the study compared, against its trial)")
    return 0
