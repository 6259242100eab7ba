"""``phonetune export --config STUDY.toml [--out ablation_sheet.csv]``: the per-trial ablation sheet and marginals."""

from __future__ import annotations

import argparse

from phonetune.search.commands import add_study_arguments
from phonetune.search.config import load_study_config
from phonetune.search.export import open_studies, write_ablation_sheet


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write the ablation sheet: one CSV row per trial, plus per-value marginals",
        description="One row per trial of the study and of its linked full-data study (number, state, fidelity, "
        "every hyperparameter, param_count, best dev accuracy, epoch of pruning, epochs run, wall time, frames/s), "
        "and beside it <out>_marginals.csv: per hyperparameter value, the trial count and the mean and best dev "
        "accuracy. Both files are replaced atomically.",
    )
    add_study_arguments(parser)
    parser.add_argument("--out", default="ablation_sheet.csv", metavar="CSV", help="sheet path")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_study_config(args.config, args.overrides)
    search_study, full_study = open_studies(config)
    result = write_ablation_sheet(search_study, full_study, args.out)
    print(f"ablation sheet: {result.sheet_path} ({result.trial_count} trials, {result.full_trial_count} full-data)")
    print(f"marginals:      {result.marginals_path}")
    return 0
