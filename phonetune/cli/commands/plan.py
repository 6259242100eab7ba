"""``phonetune plan --config STUDY.toml --budget 6h``: the plan ``phonetune run`` would make, without training.

On this machine it validates and caches the data and times training steps, as a job does before it plans (about a
minute); with ``--speed FILE`` (another machine's speed line, as ``phonetune plan --save-speed`` writes it, or
``studies/speeds/h200.json``) it times nothing, and with ``--frames`` it reads no data either, so a student sees
what a budget buys on a GPU host before renting one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from phonetune.cli.commands import add_command, load_study_args
from phonetune.errors import ConfigError
from phonetune.job.clock import parse_budget
# At import, before main() sets up logging: Optuna's loggers are then routed like every other command's.
from phonetune.job.run import preview_plan

# About the frames of HW1P2's Kaggle data (train-clean-100, dev-clean, test-clean), for --frames hw1p2: a preview
# needs the sizes, not the last frame.
HW1P2_FRAMES = (36_000_000, 1_930_000, 1_940_000)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "plan", study=True,
        description="Print the plan `phonetune run` would make for a budget: the screen (how many trials of what "
        "length) or none and why, the final run's size and length, the reserve. Times this machine unless --speed "
        "names another's speed line (a JSON file of model.speed.Speed's fields).",
    )
    parser.add_argument("--budget", required=True, help="wall-clock budget of the job: 90s, 20m, 1.5h, 2m30s")
    parser.add_argument("--workers", type=int, default=1, help="worker processes the job would run")
    parser.add_argument("--speed", default=None, metavar="FILE.json",
                        help="another machine's speed line instead of timing this one (studies/speeds/h200.json)")
    parser.add_argument("--frames", default=None, metavar="TRAIN,DEV,TEST",
                        help="the splits' frames instead of reading the data (or 'hw1p2' for the Kaggle data)")
    parser.add_argument("--prepare", default="1m", metavar="DURATION",
                        help="with --speed: what preparing (caching the data, timing) takes there (default 1m)")
    parser.add_argument("--save-speed", default=None, metavar="FILE.json",
                        help="write the speed line measured here, for --speed on another machine's preview")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(handler=run)


def _frames(text: str) -> tuple[int, int, int]:
    if text.strip().lower() == "hw1p2":
        return HW1P2_FRAMES
    parts = text.replace("_", "").split(",")
    if len(parts) != 3 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise ConfigError(f"--frames must be three positive frame counts TRAIN,DEV,TEST (or hw1p2), but got {text!r}")
    train, dev, test = (int(part) for part in parts)
    return train, dev, test


def _speed(path: str):
    from phonetune.model.speed import Speed

    try:
        values = json.loads(Path(path).read_text())
        return Speed(**values)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"--speed {path} must be a JSON object of a speed line's fields (fixed, per_param, device, "
                          f"per_step), as --save-speed writes it, but reading it failed: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    budget_s = parse_budget(args.budget)
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, but got {args.workers}")
    speed = _speed(args.speed) if args.speed else None
    frames = _frames(args.frames) if args.frames else None
    if frames is not None and speed is None:
        raise ConfigError("--frames needs --speed: timing this machine reads its data anyway")
    config = load_study_args(args, needs_data=frames is None)
    plan = preview_plan(config, budget_s, args.workers, speed=speed, frames=frames,
                        prepare_s=parse_budget(args.prepare) if speed is not None else 0.0,
                        progress=sys.stderr.isatty())
    if args.save_speed:
        Path(args.save_speed).write_text(json.dumps(plan.speed, indent=1) + "\n")
    if args.json:
        print(json.dumps(plan.to_dict(), indent=1))
    else:
        where = f"the speed line of {args.speed}" if args.speed else "this machine's measured speed"
        print(f"plan of {config.name!r} for --budget {args.budget} on {where}:")
        print(plan.describe_text())
    return 0
