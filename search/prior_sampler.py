"""``PriorSampler``: search around the known-good configurations first, and widen as evidence comes.

With few trials (a CPU budget pays for about ten) a model-based sampler is still drawing at random, and random MLP
configurations mostly lose to a good warm start. This sampler starts where the warm starts are, as FLAML's CFO does
(a local search from a known-good start) and piBO (Hvarfner et al., 2022: a prior whose weight decays as trials
accumulate):

- first, *moves*: the incumbent (the best COMPLETE trial, or before any completes the first ``[[warm_start]]``)
  with one hyperparameter moved one step, in the order of ``MOVES`` (the learning rate doubled and halved, the
  context widened and narrowed, more dropout, one hidden layer more and fewer at the same parameter count, more
  masking and smoothing, the batch size, the schedule...; regularizers only up, see ``MOVES``). A move that made the new incumbent is taken again from it
  first (a pattern step), and its reverse is not tried from there. Each move is recorded on the trial
  (``move``), so the sheet shows the incumbent with one hyperparameter changed;
- once every move of the incumbent is tried, with probability ``prior_weight / (prior_weight + finished trials)`` a new trial is a *mutation of the incumbent*
  (the best COMPLETE trial, or before any completes the first ``[[warm_start]]`` trial): its parameters are copied
  and ``k`` of them are redrawn near the incumbent's values (a categorical takes another choice; a number moves by a
  log-normal factor of about 2 or a normal step of about a third of its range, and never by less than a factor of
  1.3 or a tenth of its range), ``k`` growing by one for every three finished
  trials since the incumbent last changed. The hyperparameters that move HW1P2 scores most (context, depth, shape,
  dropout, learning rate, batch size, masking, smoothing, decay) are picked three times as often as the others;
- otherwise the base sampler (TPE, ``[sampler]`` settings) proposes the trial, exploring the whole space.

A parameter the incumbent does not have (one that applies only to a choice the mutation made, such as momentum
after a switch to SGD) is drawn by the base sampler. With ``target_params`` > 0 every sampled trial's width (moved,
mutated or explored) is the one that gives its model that many parameters (``phonetune run`` sets it to its final
size), so depth, context and shape are compared at a fixed parameter count; otherwise the width fraction mutates
like any number.

Why written here rather than taken from FLAML or OptunaHub: FLAML's CFO and BlendSearch propose whole configurations
through their own tuner and know nothing of a width derived under a parameter limit or of parameters that apply
only to some choices; an adapter over Optuna's per-parameter sampling would be longer than this schedule of moves,
and OptunaHub's samplers are fetched from the network at run time, which an offline GPU host cannot do.
Enqueued trials (warm starts) keep their parameters; what they leave open is drawn by the base sampler.

Example::

    sampler = PriorSampler(config, optuna.samplers.TPESampler(seed=0), seed=0, target_params=1_280_000)
    study = optuna.create_study(direction="maximize", sampler=sampler)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.optuna_private import enqueued_params, set_frozen_trial_user_attr
from phonetune.search.ranking import best_trial
from phonetune.search.space import WIDTH_FRACTION, width_fraction_for_params
from phonetune.search.space_spec import Choice, IntRange, unused_params

# Hyperparameters that move frame-level phoneme accuracy most (the handout's ablations and public HW1P2 write-ups).
MAJOR = frozenset({"context_frames", "hidden_layers", "width_shape", "dropout", "lr", "batch_size", "time_mask_prob",
                   "freq_mask_prob", "label_smoothing", "weight_decay", "activation", "batchnorm"})
MAJOR_WEIGHT = 3.0
# The moves tried around the incumbent, in order: (hyperparameter, direction). A direction is "up" or "down" (a
# number: a factor of 2 on a log scale, a quarter of the range or a sixth of an integer range, one step for depth; a
# list of numbers: the next value) or "other" (a categorical: the next choice). Moves of hyperparameters the space
# fixes, or that would leave the range, are skipped. Regularizers only move up: a trial shorter than its final run
# favours less regularization whatever is best at the final run's length (Wu et al., ICLR 2018), so a short trial
# that still prefers more of it can be trusted, and one that prefers less cannot.
MOVES = (("lr", "up"), ("lr", "down"), ("context_frames", "up"), ("context_frames", "down"), ("dropout", "up"),
         ("hidden_layers", "up"), ("hidden_layers", "down"), ("time_mask_prob", "up"), ("freq_mask_prob", "up"),
         ("label_smoothing", "up"), ("batch_size", "down"), ("batch_size", "up"), ("weight_decay", "up"),
         ("scheduler", "other"), ("width_shape", "other"), ("activation", "other"), ("batchnorm", "other"))
REVERSE = {"up": "down", "down": "up", "other": "other"}
MAX_MUTATIONS = 4
FINISHED_PER_EXTRA_MUTATION = 3
# A move is a normal step of this standard deviation (log scale: a factor of about 2; linear: a third of the range),
# and at least the minimum: with a handful of trials, a move too small to change the result wastes one.
LOG_STEP = 0.7
LINEAR_STEP = 1 / 3
MIN_LOG_MOVE = 0.25  # a factor of about 1.3
MIN_LINEAR_MOVE = 0.1  # a tenth of the range
MOVE_FACTOR = 2.0  # a move of a number on a log scale: doubled or halved


class PriorSampler(BaseSampler):
    """See the module docstring. ``base`` proposes the exploring trials and what a mutation cannot copy."""

    def __init__(self, config: StudyConfig, base: BaseSampler, *, seed: int | None = None,
                 prior_weight: float = 10.0, target_params: int = 0) -> None:
        self.config = config
        self.base = base
        self.prior_weight = prior_weight
        self.target_params = target_params
        self._rng = np.random.default_rng(seed)
        self._plans: dict[int, dict[str, Any]] = {}  # trial number -> {"parent": params, "mutate": names, "move"}

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self.base.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)
        if trial.state != TrialState.RUNNING or trial.params or enqueued_params(trial):
            # A handle on a stored trial (a note added after it finished) or a warm start: nothing to sample.
            return
        trials = study.get_trials(deepcopy=False)
        # Before any trial completes, the first warm start; a second worker may ask while that one is still being
        # set up (its values then are only the ones it was enqueued with).
        parent = best_trial(trials) or next(
            (t for t in trials if t.user_attrs.get(attrs.WARM_START) and (t.params or enqueued_params(t))), None
        )
        if parent is None:
            return
        move = self._next_move(parent, trials) if self.prior_weight > 0 else None
        if move is not None:
            self._plans[trial.number] = {"parent": dict(parent.params or enqueued_params(parent)),
                                         "parent_number": parent.number, "mutate": set(), "move": move}
            set_frozen_trial_user_attr(study, trial, attrs.MUTATED_FROM, parent.number)
            set_frozen_trial_user_attr(study, trial, attrs.MOVE, f"{move[0]} {move[1]}")
            return
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        if self._rng.random() >= self.prior_weight / (self.prior_weight + len(finished)):
            return  # an exploring trial: the base sampler proposes it
        since = [t for t in finished if t.number > parent.number]
        count = min(MAX_MUTATIONS, 1 + len(since) // FINISHED_PER_EXTRA_MUTATION)
        # Only what the parent's model uses: redrawing an activation of a model without hidden layers changes
        # nothing, and such a "mutation" would only train the parent again.
        ignored = unused_params({**parent.params, **parent.user_attrs})
        names = [name for name in parent.params
                 if name not in ignored and not (self.target_params and name == WIDTH_FRACTION)]
        if not names:
            return
        weights = np.array([MAJOR_WEIGHT if name in MAJOR else 1.0 for name in names])
        chosen = self._rng.choice(len(names), size=min(count, len(names)), replace=False, p=weights / weights.sum())
        self._plans[trial.number] = {
            "parent": dict(parent.params),
            "parent_number": parent.number,
            "mutate": {names[index] for index in chosen},
        }
        # Recorded so that the sheet and the dashboard show where a trial came from.
        set_frozen_trial_user_attr(study, trial, attrs.MUTATED_FROM, parent.number)

    def _next_move(self, parent: FrozenTrial, trials: list[FrozenTrial]) -> tuple[str, str] | None:
        """The first move of ``MOVES`` not yet tried from ``parent`` that changes its configuration: the move that
        made it first, never the reverse of that one."""
        tried = {t.user_attrs.get(attrs.MOVE) for t in trials if t.user_attrs.get(attrs.MUTATED_FROM) == parent.number}
        came_by = parent.user_attrs.get(attrs.MOVE)
        order = list(MOVES)
        if came_by:
            name, direction = came_by.split(" ", 1)
            order = [(name, direction)] + [move for move in order if move not in ((name, direction),
                                                                                  (name, REVERSE[direction]))]
        params = parent.params or enqueued_params(parent)
        ignored = unused_params({**params, **parent.user_attrs})
        for name, direction in order:
            if f"{name} {direction}" in tried or name not in params or name in ignored:
                continue
            distribution = parent.distributions.get(name) or self._space_distribution(name)
            if distribution is None or self._moved(params[name], distribution, direction) is None:
                continue
            return name, direction
        return None

    def _space_distribution(self, name: str) -> BaseDistribution | None:
        """The distribution the space samples ``name`` from (for a parent not sampled yet: an enqueued warm start)."""
        spec = self.config.space.get(name)
        if spec is None or spec.is_fixed():
            return None
        if isinstance(spec, Choice):
            return CategoricalDistribution(spec.choices)
        if isinstance(spec, IntRange):
            return IntDistribution(int(spec.low), int(spec.high), step=1 if spec.log else spec.step, log=spec.log)
        return FloatDistribution(float(spec.low), float(spec.high), log=spec.log)

    @staticmethod
    def _moved(value: Any, distribution: BaseDistribution, direction: str) -> Any:
        """``value`` one step ``direction`` within ``distribution``; None when that leaves it where it is."""
        if isinstance(distribution, CategoricalDistribution):
            choices = list(distribution.choices)
            if value not in choices or len(choices) < 2:
                return None
            index = choices.index(value)
            if direction == "other":
                return choices[(index + 1) % len(choices)]
            if not all(isinstance(choice, (int, float)) and not isinstance(choice, bool) for choice in choices):
                return None
            ordered = sorted(choices)
            position = ordered.index(value) + (1 if direction == "up" else -1)
            return ordered[position] if 0 <= position < len(ordered) else None
        if direction == "other" or not isinstance(distribution, (FloatDistribution, IntDistribution)):
            return None
        low, high = distribution.low, distribution.high
        sign = 1 if direction == "up" else -1
        if isinstance(distribution, IntDistribution):
            step = distribution.step * max(1, round((high - low) / 6 / distribution.step))
            moved = min(high, max(low, value + sign * step))
        elif distribution.log:
            moved = min(high, max(low, value * MOVE_FACTOR ** sign))
        else:
            moved = min(high, max(low, value + sign * (high - low) / 4))
        return None if moved == value else moved

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if trial.number in self._plans:
            return {}
        space = self.base.infer_relative_search_space(study, trial)
        if self.target_params:
            # The width follows from the target size (sample_independent), not from the base sampler's model.
            space = {name: distribution for name, distribution in space.items() if name != WIDTH_FRACTION}
        return space

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict:
        if trial.number in self._plans or not search_space:
            return {}
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        plan = self._plans.get(trial.number)
        if param_name == WIDTH_FRACTION and self.target_params and not enqueued_params(trial):
            fraction = width_fraction_for_params(self.config, trial.params, self.target_params)
            if fraction is not None:
                return fraction
        if plan is None:
            return self.base.sample_independent(study, trial, param_name, param_distribution)
        parent = plan["parent"]
        if param_name not in parent or not param_distribution._contains(param_distribution.to_internal_repr(
                parent[param_name])):
            return self.base.sample_independent(study, trial, param_name, param_distribution)
        move = plan.get("move")
        if move is not None and move[0] == param_name:
            moved = self._moved(parent[param_name], param_distribution, move[1])
            return parent[param_name] if moved is None else moved
        if param_name not in plan["mutate"]:
            return parent[param_name]
        return self._mutate(parent[param_name], param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self._plans.pop(trial.number, None)
        self.base.after_trial(study, trial, state, values)

    def _mutate(self, value: Any, distribution: BaseDistribution) -> Any:
        rng = self._rng
        if isinstance(distribution, CategoricalDistribution):
            others = [choice for choice in distribution.choices if choice != value]
            return others[rng.integers(len(others))] if others else value
        assert isinstance(distribution, (FloatDistribution, IntDistribution))
        low, high = distribution.low, distribution.high
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if distribution.log and value > 0:
            step = rng.normal(0.0, LOG_STEP)
            step = step if abs(step) >= MIN_LOG_MOVE else sign * MIN_LOG_MOVE
            moved = math.exp(math.log(value) + step)
        else:
            step = rng.normal(0.0, LINEAR_STEP * (high - low))
            step = step if abs(step) >= MIN_LINEAR_MOVE * (high - low) else sign * MIN_LINEAR_MOVE * (high - low)
            moved = value + step
        if not low <= moved <= high:
            moved = value - (moved - value)  # bounce off the edge rather than sit on it
        moved = min(high, max(low, moved))
        if isinstance(distribution, IntDistribution):
            step = distribution.step
            moved = low + step * round((moved - low) / step)
            if moved == value and high > low:  # an integer must move by at least one step
                moved = value + step if value + step <= high else value - step
            return int(min(high, max(low, moved)))
        if distribution.step is not None:
            moved = low + distribution.step * round((moved - low) / distribution.step)
        return float(moved)
