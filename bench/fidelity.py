"""Does the screen rank what the final run trains? K screen trials each trained at the final horizon, in one run.

``phonetune run`` picks its final model from a screen of whole runs compressed to the trial horizon (an eighth of
the final run), and trains only the best at the final horizon. This measures that pick where it matters, on the
candidates the job's own screen makes (the warm starts resized to the size cap, then the prior sampler's moves of
the best): the job's plan for ``--budget`` on this machine (it must be a screened plan: use a capped study,
``--set study.param_limit=1000000``), its screen run for exactly ``--trials`` trials, then *every* one of them
trained from scratch at the plan's final horizon, as the winner alone would be. Printed per trial: where it came
from, its size, its screen accuracy (on the screen's share of dev) and its final dev accuracy; then the Spearman
rank correlation of the two over the K trials, and the regret of the screen's pick. Last line:

    ratio: final dev accuracy of the screen's pick / the best final dev accuracy among the K   (1.0 = it picked the best)

Usage: python bench/fidelity.py [--config studies/demo.toml] --data data/demo --budget 20m --trials 8 \\
           [--set study.param_limit=1000000]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import optuna

from phonetune.errors import PhonetuneError
from phonetune.job.clock import format_seconds, parse_budget
from phonetune.job.run import plan_job, prepare_data
from phonetune.job.screen import screen_study
from phonetune.search import attributes as attrs
from phonetune.search.config import load_study_config
from phonetune.search.promote import promote_top_trials, spearman_correlation
from phonetune.search.study import open_study
from phonetune.search.supervisor import run_search

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "studies" / "demo.toml"))
    parser.add_argument("--data", default="data/demo")
    parser.add_argument("--budget", default="20m", help="the job budget whose plan sizes the trials")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget_s = parse_budget(args.budget)
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        folder = Path(tmp)
        config = load_study_config(args.config, [
            f'data.root="{Path(args.data).resolve()}"', 'study.name="fidelity"',
            f'study.storage="sqlite:///{folder / "study.db"}"', f'study.artifacts_dir="{folder / "artifacts"}"',
            f"sampler.seed={args.seed}", f"train.seed={args.seed}", *args.overrides,
        ])
        started = time.monotonic()
        test_frames = prepare_data(config, progress=False)
        plan = plan_job(config, budget_s, time.monotonic() - started, args.workers, test_frames)
        print(f"plan:\n{plan.describe_text()}", flush=True)
        if plan.direct:
            raise PhonetuneError(f"the plan for {args.budget} is direct (no screen to rank); give a capped study "
                                 "(--set study.param_limit=1000000) or a larger --budget")
        screen = screen_study(config, plan)
        screen = dataclasses.replace(screen, study=dataclasses.replace(screen.study, n_trials=args.trials,
                                                                       timeout_seconds=0))
        run_search(screen, workers=args.workers, progress=False)
        trials = [trial for trial in open_study(screen).get_trials(deepcopy=False) if trial.value is not None]
        print(f"screen: {len(trials)} complete trials in {format_seconds(time.monotonic() - started)}", flush=True)
        result = promote_top_trials(screen, len(trials), progress=False)
        full = {item.source_number: item for item in result.promoted}
        rows = []
        for trial in sorted(trials, key=lambda item: (-item.value, item.number)):
            origin = trial.user_attrs.get(attrs.WARM_START) or (
                f"{trial.user_attrs.get(attrs.MOVE) or 'mutation'} of {trial.user_attrs[attrs.MUTATED_FROM]}"
                if attrs.MUTATED_FROM in trial.user_attrs else "base sampler")
            rows.append((trial.number, origin, trial.user_attrs.get(attrs.PARAM_COUNT), trial.value,
                         full[trial.number].full_accuracy))
            print(f"trial {trial.number:>3}  {origin:<28} {rows[-1][2]:>10,} params  screen {trial.value:.4f}  "
                  f"final {rows[-1][4]:.4f}", flush=True)
        rho = spearman_correlation([row[3] for row in rows], [row[4] for row in rows])
        pick, best = rows[0][4], max(row[4] for row in rows)
        print(f"Spearman screen vs final over K={len(rows)} (warm starts included): "
              f"{'undefined' if rho is None else f'{rho:.3f}'}")
        print(f"the screen picked trial {rows[0][0]} (final {pick:.4f}); the best final was {best:.4f}: regret "
              f"{100 * (best - pick):.2f} points; {format_seconds(time.monotonic() - started)} in all")
        print(f"ratio: {pick / best:.4f}")


if __name__ == "__main__":
    main()
