"""``phonetune run --config STUDY.toml --budget 20m [--workers N] [--gpus ...]``: the whole job under one budget."""

from __future__ import annotations

import argparse
import sys

from phonetune.cli.commands import add_command, interrupt_on_sigterm, load_study_args
from phonetune.cli.hosts import parse_gpus
from phonetune.job.clock import format_seconds, parse_budget
from phonetune.interrupts import InterruptedBeforeState
from phonetune.job.run import job_state_path, run_job
from phonetune.model.params import DEFAULT_PARAM_LIMIT
from phonetune.results.leaderboard import format_leaderboard, leaderboard
from phonetune.search.final_model import labels_line
from phonetune.search.study import open_studies


# An overrun smaller than this is the clock's own grain (a save every few seconds, the command's exit).
OVERRUN_SAID_S = 1.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "run", study=True,
        description="Plan the budget from this machine's measured speed. When the size cap leaves time over, screen "
        "candidates at the cap, each a whole run of the same short horizon (the warm starts, then moves of the best "
        "so far), and train the best from scratch to the deadline, its learning rate reaching zero exactly then; "
        "otherwise the first warm start, sized to the time, trains the whole budget. Write and score the test "
        "submission (each frame's argmax; the sequence decode's labels beside it), the ablation sheet, the report "
        "and summary.json. Ctrl-C or a kill, then the same command, continues where it stopped and spends only the "
        "budget left.",
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
    try:
        outcome = run_job(
            config, budget_s, workers=args.workers, gpus=gpus, max_members=args.max_members,
            sheet_path=args.sheet, progress=not args.quiet and sys.stderr.isatty(), fresh=args.fresh,
            started_at=args.entered_at,
        )
    except KeyboardInterrupt:
        if not job_state_path(config).exists():
            raise InterruptedBeforeState from None
        raise
    summary = outcome.summary
    model = summary["final_model"]
    screen = summary["screen"]
    winner = screen["winner"]
    plan = summary["plan"]
    if plan.get("kind") == "direct":
        print(f"screen: none ({plan['why']})")
    else:
        warm = "; ".join(
            f"{name} {item['screen_accuracy']:.4f}" if item["screen_accuracy"] is not None
            else f"{name} not evaluated ({item['state'].lower()})" for name, item in screen["warm_starts"].items())
        told = ("no trial reported an evaluation" if winner["screen_accuracy"] is None else
                f"dev {winner['screen_accuracy']:.4f} on {screen['dev_share']:.0%} of dev")
        print(f"screen: {screen['complete_trials']} of {screen['trials']} trials complete, each a whole run of "
              f"{format_seconds(screen['trial_seconds'])}; winner trial {winner['trial']} ({winner['from']}), {told}"
              + (f"; warm starts: {warm}" if warm else ""))
    for name, why in screen["not_screened"].items():
        print(f"  {name}: not screened, {why}")
    limit = "HW1P2 limit" if model["size_cap"] == DEFAULT_PARAM_LIMIT else "param_limit"
    print(f"final model: {model['chosen']} of search trials {model['members']} ({model['param_count']:,} parameters; "
          f"{limit} {model['size_cap']:,})")
    print(labels_line(model))
    if model.get("dev_score_dir"):
        print(f"dev diagnostics: {model['dev_score_dir']} (per_phoneme.csv, confusion.html); "
              f"metadata: {model['metadata']}")
    print(format_leaderboard(leaderboard(*open_studies(config))))
    print(f"spent {format_seconds(summary['spent_s'])} of {format_seconds(budget_s)}")
    over = summary["spent_s"] - budget_s
    if over > OVERRUN_SAID_S:
        starts = summary.get("starts", 1)
        why = (f"over {starts} starts: each start after an interruption pays the command's start again and redoes the "
               "step it stopped in" if starts > 1 else "its steps took longer than planned (a busy machine?)")
        print(f"warning: this job ended {format_seconds(over)} past its --budget ({summary['spent_s'] / budget_s:.2f} x "
              f"the budget), {why}", file=sys.stderr)
    print(f"sheet: {summary['sheet']}")
    if summary.get("changes"):
        print(f"changes: {summary['changes']} (each single change the screen compared, for the writeup's table)")
    print(f"report: {summary['report']}")
    print(f"submission: {outcome.submission}")
    print(f"summary: {outcome.summary_path}")
    return 0
