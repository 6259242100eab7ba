"""Pruning pays: the same trial budget searched with the study's pruner and without, on the demo corpus, in one run.

Both searches use the same study file, sampler seed, trial count and epochs per trial; only ``[pruner] kind``
differs (``none`` for the baseline). Each runs in this process, one worker, on its own SQLite file in a temporary
folder, with the data loaded once and shared. Printed per search: trials by state, trial-epochs spent (epochs
actually trained, summed over trials) and the best dev accuracy reached; then the accuracy gap and

    ratio: trial-epochs without pruning / trial-epochs with pruning

Target (issue 4): at least 60% fewer trial-epochs (ratio >= 2.5) for a best accuracy within 0.5 points.
Pruning saves more the more epochs a trial has (ASHA's rungs sit at 1, 3, 9, ... epochs), so ``--epochs`` matters.

Run:   python bench/search.py                                  # studies/demo.toml on data/demo, 14 trials x 9 epochs
Quick: python bench/search.py --trials 10 --epochs 9 --make-data 240   # builds a small flite corpus if data/ is absent
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from phonetune.search import attributes as attrs
from phonetune.search.attributes import SEARCH_FIDELITY
from phonetune.search.config import load_study_config
from phonetune.search.runner import load_fidelity_data
from phonetune.search.study import open_study
from phonetune.search.worker import run_worker


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="studies/demo.toml", help="study file whose space and pruner are used")
    parser.add_argument("--data", default=None, help="data root (default: the study's [data] root)")
    parser.add_argument("--trials", type=int, default=14, help="trials per search (the same budget for both)")
    parser.add_argument("--epochs", type=int, default=9, help="epochs per trial ([fidelity] trial_epochs)")
    parser.add_argument("--train-fraction", type=float, default=None, help="[fidelity] train_fraction override")
    parser.add_argument("--pruner", default=None, help="pruner kind for the pruned search (default: the study's)")
    parser.add_argument("--make-data", type=int, default=0, metavar="UTTERANCES",
                        help="when the data root is missing, synthesize a demo corpus with this many training "
                             "utterances (dev and test get a fifth each)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more study overrides")
    return parser.parse_args()


def ensure_data(root: Path, train_utterances: int) -> None:
    if (root / "train-clean-100").is_dir():
        return
    if not train_utterances:
        sys.exit(f"no corpus at {root}: run `phonetune demo-data --out {root}` or pass --make-data N")
    from phonetune.data_pipeline.demo_corpus import DemoCorpusConfig, build_demo_corpus

    held_out = max(10, train_utterances // 5)
    config = DemoCorpusConfig(train_utterances=train_utterances, dev_utterances=held_out, test_utterances=held_out)
    build_demo_corpus(root, config, progress=False)


def run_one(args: argparse.Namespace, folder: Path, pruner: str, data) -> dict:
    folder.mkdir(parents=True, exist_ok=True)  # a SQLite file needs an existing folder
    overrides = [
        *args.set,
        f"study.storage=\"sqlite:///{folder / 'study.db'}\"",
        f"study.artifacts_dir=\"{folder / 'artifacts'}\"",
        f"study.n_trials={args.trials}",
        "study.timeout_seconds=0",
        f"fidelity.trial_epochs={args.epochs}",
        f"pruner.kind=\"{pruner}\"",
    ]
    if args.data:
        overrides.append(f"data.root=\"{args.data}\"")
    if args.train_fraction is not None:
        overrides.append(f"fidelity.train_fraction={args.train_fraction}")
    config = load_study_config(args.config, overrides)
    started = time.perf_counter()
    run_worker(config, create=True, data=data)
    seconds = time.perf_counter() - started
    trials = open_study(config).get_trials(deepcopy=False)
    finished = [trial for trial in trials if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    complete = [trial for trial in finished if trial.state == TrialState.COMPLETE]
    return {
        "pruner": pruner,
        "complete": len(complete),
        "pruned": len(finished) - len(complete),
        "trial_epochs": sum(int(trial.user_attrs.get(attrs.EPOCHS_RUN, 0)) for trial in finished),
        "best": max((trial.value for trial in complete), default=float("nan")),
        "seconds": seconds,
    }


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base_overrides = args.set + ([f"data.root=\"{args.data}\""] if args.data else [])
    if args.train_fraction is not None:
        base_overrides.append(f"fidelity.train_fraction={args.train_fraction}")
    base = load_study_config(args.config, base_overrides)
    ensure_data(Path(base.data.root), args.make_data)
    data = load_fidelity_data(base, SEARCH_FIDELITY)
    pruner = args.pruner or (base.pruner.kind if base.pruner.kind != "none" else "asha")
    print(f"study {args.config}: {args.trials} trials x {args.epochs} epochs, train_fraction "
          f"{args.train_fraction or base.fidelity.train_fraction}, data {base.data.root} "
          f"({data.train.num_frames:,} train / {data.dev.num_frames:,} dev frames), sampler seed {base.sampler.seed}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        for kind in (pruner, "none"):
            folder = Path(tmp) / kind
            results.append(run_one(args, folder, kind, data))
            row = results[-1]
            print(f"pruner={kind:<9} complete={row['complete']:>3} pruned={row['pruned']:>3} "
                  f"trial-epochs={row['trial_epochs']:>4} best dev accuracy={row['best']:.4f} "
                  f"({row['seconds']:.0f} s)", flush=True)
    pruned, baseline = results
    saved = 1 - pruned["trial_epochs"] / baseline["trial_epochs"]
    gap = 100 * (baseline["best"] - pruned["best"])
    print(f"trial-epochs saved by pruning: {saved:.0%} (target >= 60%); best accuracy gap: {gap:+.2f} points "
          f"(target <= 0.5)")
    print(f"ratio: {baseline['trial_epochs'] / pruned['trial_epochs']:.2f}")


if __name__ == "__main__":
    main()
