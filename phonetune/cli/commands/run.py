"""``phonetune run --config STUDY.toml --budget 20m [--workers N] [--gpus ...]``: the whole job under one budget."""

from __future__ import annotations

import argparse
import sys

from phonetune.cli.commands import add_command, interrupt_on_sigterm, load_study_args
from phonetune.cli.hosts import parse_gpus
from phonetune.job.clock import format_seconds, parse_budget
from phonetune.job.run import run_job
from phonetune.model.params import DEFAULT_PARAM_LIMIT
from phonetune.results.leaderboard import format_leaderboard, leaderboard
from phonetune.search.study import open_studies


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "run", study=True,
        description="Plan the budget from this machine's measured speed; screen candidates (the study's warm-start "
        "recipes at their own size and at the size the budget trains best, then mutations of the best so far) for "
        "equal time as the start of their final runs, pruning the weak; continue the best to the deadline with a "
        "learning rate that reaches zero exactly then; write and score the test submission, the ablation sheet, "
        "the report and summary.json. Ctrl-C or a kill, then the same command, continues where it stopped and "
        "spends only the budget left.",
    )
    parser.add_argument("--budget", required=True, help="wall-clock budget for the whole job: 90s, 20m, 1.5h, 2m30s")
    parser.add_argument("--workers", type=int, default=1, help="search worker processes on this machine")
    parser.add_argument("--gpus", default="", metavar="0,1,...", help="pin search worker i to GPU gpus[i %% len(gpus)]")
    parser.add_argument("--max-members", type=int, default=4, metavar="M", help="most runs in the final ensemble")
    parser.add_argument("--sheet", default=None, metavar="CSV",
                        help="where the ablation sheet goes (default: <artifacts>/ablation_sheet.csv)")
    parser.add_argument("--fresh", action="store_true",
                        help="start this study's job over: delete its trials, run folders and state first "
                        "(other studies are untouched)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    budget_s = parse_budget(args.budget)
    gpus = parse_gpus(args.gpus)
    interrupt_on_sigterm()
    config = load_study_args(args, needs_data=True)
    outcome = run_job(
        config, budget_s, workers=args.workers, gpus=gpus, max_members=args.max_members,
        sheet_path=args.sheet, progress=not args.quiet and sys.stderr.isatty(), fresh=args.fresh,
        started_at=args.entered_at,
    )
    summary = outcome.summary
    model = summary["final_model"]
    screen = summary["screen"]
    winner = screen["winner"]
    test = "not scored (no test labels)" if summary["test_accuracy"] is None else f"{summary['test_accuracy']:.4f}"
    recipes = "; ".join(
        f"{name} {item['screen_accuracy']:.4f} ({item['state'].lower()} after {item['evaluations']} evaluations)"
        if item["screen_accuracy"] is not None else f"{name} not evaluated ({item['state'].lower()})"
        for name, item in screen["warm_starts"].items()
    )
    if winner["screen_accuracy"] is None:
        told = "no screen trial reported an evaluation; the final run trained it from its start"
    else:
        told = (f"dev {winner['screen_accuracy']:.4f} on {screen['dev_share']:.0%} of dev after its "
                f"{screen['trial_seconds']:.0f} s of training")
    print(f"screen winner: trial {winner['trial']} ({winner['from']}), {told}"
          + (f"; warm starts: {recipes}" if recipes else ""))
    for name, why in screen["not_screened"].items():
        print(f"  {name}: not screened, {why}")
    print(f"final model: {model['chosen']} of search trials {model['members']} ({model['param_count']:,} parameters; "
          f"HW1P2 limit {DEFAULT_PARAM_LIMIT:,}); dev {model['dev_accuracy']:.4f}; test {test}")
    decoder = model.get("decoder")
    if decoder:
        argmax = model.get("test_argmax_accuracy")
        on_test = f", test {argmax:.4f} by argmax" if argmax is not None else ""
        if decoder["used"]:
            print(f"labels: the likeliest phoneme sequence (weight {decoder['weight']:g}, prior power "
                  f"{decoder['prior_power']:g}): dev {decoder['dev_decoded_accuracy']:.4f} against "
                  f"{decoder['dev_argmax_accuracy']:.4f} by each frame's argmax{on_test}; [decode] mode = \"argmax\" "
                  "keeps the network's own")
        else:
            print(f"labels: each frame's argmax (the sequence decode reached dev {decoder['dev_decoded_accuracy']:.4f}"
                  f" against {decoder['dev_argmax_accuracy']:.4f})")
    if model.get("dev_score_dir"):
        print(f"dev diagnostics: {model['dev_score_dir']} (per_phoneme.csv, confusion.html); "
              f"metadata: {model['metadata']}")
    print(format_leaderboard(leaderboard(*open_studies(config))))
    print(f"spent {format_seconds(summary['spent_s'])} of {format_seconds(budget_s)}")
    print(f"sheet: {summary['sheet']}")
    print(f"report: {summary['report']}")
    print(f"submission: {outcome.submission}")
    print(f"summary: {outcome.summary_path}")
    return 0
