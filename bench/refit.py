"""The plan's size when the machine slows down between its speed probe and the refit of its speed line: the refit
timed beside the probe's own model (phonetune's) against the same step timed alone (the baseline), in one run.

The planner probes this machine's speed, then refits the line through a step of the model it would most likely
train (``job.run._refit_speed``). A slow moment of the host during that step, timed alone, prices the model too slow
and shrinks the plan: a ``make demo`` once planned 1.7M parameters instead of about 2.3M for it. Ours alternates the
step's spans with the probe's large model and prices the step from their ratio, so a slowdown that hits both cancels.

The bench probes the speed once, with the machine to itself, then refits it four times: each way quiet, and each way
while another process spins on one core (started after the probe, as the slow moment was). For each way the
planned size beside the spinner is compared with its planned size when quiet; the distortion is the larger of their
ratio and its inverse (1 is none). The last line is ``ratio: X`` = the baseline's distortion / ours (above 1: ours
holds the plan better).

Run::

    .venv/bin/python bench/refit.py --data data/demo --budget 10m
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from phonetune.job.clock import parse_budget
from phonetune.job.planner import Plan, make_plan
from phonetune.job.run import REFIT_PROBE_S, REFIT_ROUNDS, plan_sizes
from phonetune.job.screen import likeliest_final_run
from phonetune.model import count_params
from phonetune.model.speed import Speed
from phonetune.model.speed_probe import (measure_relative_step, measure_run_step_seconds, measure_speed,
                                         probed_reference_step_s)
from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config
from phonetune.search.runner import load_fidelity_data

REPO = Path(__file__).resolve().parents[1]
ELAPSED_S = 20.0  # what the job has spent before its plan (preparing, probing): the same for every plan here
TEST_FRAMES_GUESS = 150_000


def _direct_plan(budget_s: float, speed: Speed, sizes: dict, config) -> Plan:
    return make_plan(budget_s, speed, elapsed_s=ELAPSED_S, **sizes)


def _beside_a_spinner(measure: Callable[[], float]) -> float:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        return measure()
    finally:
        spinner.kill()
        spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "studies" / "demo.toml"))
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--probe-seconds", type=float, default=1.0, help="each of the probe's timings")
    parser.add_argument("--refit-seconds", type=float, default=REFIT_PROBE_S, help="each refit's timing (the job's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = load_study_config(args.config, [f'data.root="{Path(args.data).resolve()}"'])
    budget_s = parse_budget(args.budget)
    data = load_fidelity_data(config, attrs.FULL_FIDELITY)
    sizes = plan_sizes(config, (data.train.num_frames, data.dev.num_frames, TEST_FRAMES_GUESS), workers=2)
    speed = measure_speed(config.train.device, split=data.train, seconds=args.probe_seconds)
    probed = _direct_plan(budget_s, speed, sizes, config)
    run_config = likeliest_final_run(config, probed)
    params, batch = count_params(run_config.model, run_config.io), run_config.train.batch_size
    line_ms = 1000 * speed.seconds_per_frame(params, batch) * batch
    reference_probed_s = probed_reference_step_s(speed)
    print(f"probe: {args.budget} plans {probed.final_params:,} params; the likeliest model {params:,} params at "
          f"batch {batch}, the probe's line {line_ms:.2f} ms a step", flush=True)

    def alone() -> float:
        return measure_run_step_seconds(run_config, data.train, seconds=args.refit_seconds, spans=2)

    def beside() -> float:
        step = measure_relative_step(run_config, data.train, seconds=args.refit_seconds, rounds=REFIT_ROUNDS)
        print(f"  timed beside the probe's model: {step.relative:.3f} times its step ({1000 * step.run_step_s:.2f} "
              f"against {1000 * step.reference_step_s:.2f} ms; the probe timed it at "
              f"{1000 * reference_probed_s:.2f} ms)", flush=True)
        return step.priced_step_s(speed)

    distortion = {}
    for name, measure in (("baseline (timed alone)", alone), ("phonetune (beside the probe's model)", beside)):
        quiet_s = measure()
        loaded_s = _beside_a_spinner(measure)
        quiet = _direct_plan(budget_s, speed.through(params, batch, quiet_s), sizes, config).final_params
        loaded = _direct_plan(budget_s, speed.through(params, batch, loaded_s), sizes, config).final_params
        distortion[name] = max(quiet / loaded, loaded / quiet)
        print(f"{name}: quiet {1000 * quiet_s:.2f} ms -> {quiet:,} params; beside a spinner {1000 * loaded_s:.2f} ms "
              f"-> {loaded:,} params; distortion {distortion[name]:.3f}", flush=True)
    baseline, ours = distortion.values()
    print(f"ratio: {baseline / ours:.3f}")


if __name__ == "__main__":
    main()
