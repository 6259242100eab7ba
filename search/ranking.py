"""The best-trial rule, in one place: the highest objective value wins, and a tie goes to the lowest trial number
(the trial that reached the value first).

Every reader of "the best trial" uses it: the search summary, promotion's top K, retrain's winner, the job's final
runs and the report's summary.

Example::

    ranked = rank_complete_trials(study.get_trials(deepcopy=False))   # COMPLETE trials, best first
    best = best_trial(study.get_trials(deepcopy=False))                # or None before the first COMPLETE trial
"""

from __future__ import annotations

from typing import Iterable

from optuna.trial import FrozenTrial, TrialState


def rank_key(trial: FrozenTrial) -> tuple[float, int]:
    """Sort key of a COMPLETE trial: higher value first, then lower trial number."""
    return -float(trial.value), trial.number


def rank_complete_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The COMPLETE trials among ``trials`` (those with a value), best first."""
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE and trial.value is not None]
    return sorted(complete, key=rank_key)


def best_trial(trials: Iterable[FrozenTrial]) -> FrozenTrial | None:
    """The best COMPLETE trial among ``trials``; None when none is COMPLETE."""
    ranked = rank_complete_trials(trials)
    return ranked[0] if ranked else None
