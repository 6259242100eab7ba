"""Hyperparameter importances a person can trust: with their spread, or withheld with the reason.

PED-ANOVA (Optuna's default evaluator: how the values of the best tenth of the trials differ from all of them)
over a dozen trials names a different "most important" hyperparameter
from one run of a job to the next, so the report shows importances only from ``MIN_TRIALS_FOR_IMPORTANCE`` complete
trials, and then as the mean and standard deviation over ``IMPORTANCE_RESAMPLES`` bootstrap resamples of them, with
how often each came first. Only the search study's trials are used: the few full-data runs of a study are far too
few to attribute anything to.
"""

from __future__ import annotations

import warnings

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from phonetune.results.export import finished_trials

# Two runs of the demo job, with 10 and 12 complete trials, named different hyperparameters the most important
# (2026-11): below this many complete trials importances are withheld.
MIN_TRIALS_FOR_IMPORTANCE = 20
IMPORTANCE_RESAMPLES = 10  # bootstrap resamples of the complete trials: the spread shown with each importance


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's complete trials that drew at least one parameter."""
    return [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if trial.params]


def _importances(study: optuna.Study) -> dict[str, float]:
    with warnings.catch_warnings():
        # Optuna warns per parameter when a value was drawn by fewer than 2 trials; the section already says
        # how many trials it rests on, so one line per parameter on the terminal adds nothing.
        warnings.filterwarnings("ignore", message="Some regimes for parameter")
        return optuna.importance.get_param_importances(study)


def resampled_importances(complete: list[FrozenTrial], resamples: int = IMPORTANCE_RESAMPLES,
                          seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """Importances over bootstrap resamples of the complete trials: per hyperparameter (mean, standard
    deviation, share of resamples that ranked it first), most important first. Raises what Optuna raises when
    nothing varies."""
    rng = np.random.default_rng(seed)
    runs: list[dict[str, float]] = []
    for _ in range(resamples):
        picked = [complete[i] for i in rng.integers(len(complete), size=len(complete))]
        resample = optuna.create_study(direction="maximize")
        resample.add_trials(picked)
        runs.append(_importances(resample))
    names = sorted({name for run in runs for name in run})
    table = {name: np.array([run.get(name, 0.0) for run in runs]) for name in names}
    firsts = [max(run, key=run.get) for run in runs if run]
    summary = {name: (float(values.mean()), float(values.std()), firsts.count(name) / len(runs))
               for name, values in table.items()}
    return dict(sorted(summary.items(), key=lambda item: -item[1][0]))


def most_important(study: optuna.Study, count: int) -> list[str]:
    """The ``count`` hyperparameters to draw: by importance once there are enough complete trials to rank them,
    else the ones whose values vary most across the trials."""
    if len(complete_trials(study)) >= MIN_TRIALS_FOR_IMPORTANCE:
        try:
            return list(_importances(study))[:count]
        except (RuntimeError, ValueError):
            pass
    trials = finished_trials(study)
    names = {name for trial in trials for name in trial.params}
    spread = {name: len({repr(trial.params.get(name)) for trial in trials}) for name in names}
    return sorted(names, key=lambda name: (-spread[name], name))[:count]
