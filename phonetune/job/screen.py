"""The job's screen: which candidates it trains, for how long each, and how it ended (``phonetune.job.run``, step 2).

Every candidate trains for the same wall time as the first tenth of the final run it would become, on all the
training data at full learning rate, evaluated through a weight average; ASHA stops the weak ones after a third of
their evaluations. The candidates: each ``[[warm_start]]`` recipe at its own size (unless far smaller than the
plan's), each recipe resized to the planned size (``expert@1.3M``), then the prior sampler's mutations of the best
so far, widening to TPE. A direct plan (``job.planner``: the screen's time holds no comparison) screens the first
of those recipes alone, on one worker. A screen the deadline cut with no complete trial is extended a little rather
than ending with nothing.
"""

from __future__ import annotations

import logging
import dataclasses
from typing import Any, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from phonetune.errors import BudgetError, StorageError
from phonetune.job.clock import BudgetClock, format_seconds
from phonetune.job.planner import Plan
from phonetune.job.state import JobState
from phonetune.model.params import count_params, max_base_width
from phonetune.model.config import ModelConfig, ModelIO
from phonetune.model.speed import Speed
from phonetune.model.train_config import RunConfig
from phonetune.search import attributes as attrs
from phonetune.search.config import PrunerConfig, StudyConfig, TimingConfig, WarmStart
from phonetune.search.ranking import rank_complete_trials
from phonetune.search.space import STRUCTURE, suggest_run_config, warm_start_params
from phonetune.search.space_spec import Choice
from phonetune.search.study import open_study
from phonetune.search.supervisor import run_search

logger = logging.getLogger(__name__)

# Workers stop starting trials this long before the screen's end, and are stopped at the end itself.
SEARCH_MARGIN_S = 5.0
SCREEN_EVALUATIONS = 9
# Evaluations per trial; ASHA compares trials after 3 of them and at the end (a third of a trial is the earliest
# comparison: before it, the trials warming up fastest lead whatever they become), and never prunes a warm start.
SCREEN_PRUNER = PrunerConfig(kind="asha", min_resource=3, reduction_factor=3, min_early_stopping_rate=0,
                             prune_warm_starts=False)
# A warm start is screened at the planned size too when its own size differs from it by more than this factor.
RESIZE_FACTOR = 1.5
# A screen that ends with no complete trial is extended (at most this often, by at least this long), leaving the
# final run at least this share of its planned time.
SCREEN_EXTENSIONS = 3
MIN_EXTENSION_S = 15.0
MIN_FINAL_SHARE = 0.25
# The schedule every screened run follows (search.timing); the space's scheduler is fixed to it.
SCREEN_SCHEDULER = "linear"


def recipe_sizes(config: StudyConfig) -> list[int]:
    """Each warm start's own parameter count (a warm start without a width: the space's bound at the budget)."""
    sizes = []
    for warm_start in config.warm_start:
        run_config = _warm_start_run_config(config, warm_start)
        sizes.append(count_params(run_config.model, run_config.io))
    return sizes


def _warm_start_run_config(config: StudyConfig, warm_start: WarmStart) -> RunConfig:
    """The run config a warm start trains at the study's budget (what it leaves open drawn as a search would)."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(warm_start_params(config, warm_start))
    return suggest_run_config(study.ask(), config, attrs.FULL_FIDELITY)


def screen_study(config: StudyConfig, plan: Plan) -> StudyConfig:
    """The study as the screen runs it, decided once from the plan (a resumed job rebuilds the same one): time-boxed
    trials on all the training data, the prior sampler aimed at the planned size, ASHA over the evaluations, the
    linear schedule, and each warm start also resized to the planned size."""
    speed = Speed(**plan.speed)
    timing = TimingConfig(
        trial_seconds=plan.trial_seconds, final_seconds=plan.final_seconds, evaluations=SCREEN_EVALUATIONS,
        seconds_per_frame=speed.fixed, seconds_per_frame_per_param=speed.per_param,
        seconds_per_step=speed.per_step,
    )
    space = dict(config.space)
    space["scheduler"] = Choice(value=SCREEN_SCHEDULER)
    depth = space["hidden_layers"]
    if depth.bounds()[1] >= 1 and depth.bounds()[0] < 1:
        # A model without hidden layers cannot be made the planned size, and at a tenth of the final run's time a
        # far smaller model leads for its speed alone: the screen compares models that have hidden layers.
        space["hidden_layers"] = dataclasses.replace(depth, low=1)
    recipes = [WarmStart(entry.name, {key: value for key, value in entry.values.items() if key != "scheduler"})
               for entry in config.warm_start]
    sizes = recipe_sizes(config)
    resized_from = _resized_warm_starts(config, recipes, sizes, plan.final_params)
    resized = list(resized_from.values())
    # A recipe is screened at its own size unless it is far smaller than the planned size (a short trial would
    # favour it for its speed) and a resized copy stands in for it; a larger one is screened as it is, since the
    # same bias only works against it. One the space's width bound keeps from growing is screened as it is too:
    # without it the screen would hold neither (on a GPU budget the expert is far below the planned size).
    screened = [(recipe, own) for recipe, own in zip(recipes, sizes)
                if recipe.values.get("hidden_layers", 1) >= 1
                and (own * RESIZE_FACTOR >= plan.final_params or recipe.name not in resized_from)]
    if plan.direct:
        # No comparison fits (job.planner): the likeliest winner alone, the first recipe at the planned size when
        # it was resized, as it is otherwise.
        candidates = [*resized, *(recipe for recipe, _own in screened)][:1]
        sizes_kept = [own for recipe, own in screened if recipe in candidates]
        budget = min(config.param_limit, max([plan.final_params, *sizes_kept]))
        return _screen_config(config, plan, timing, space, candidates, budget, n_trials=1)
    budget = min(config.param_limit, max([plan.final_params, *(own for _recipe, own in screened)]))
    warm_starts = [recipe for recipe, _own in screened]
    # The planned size first: the likelier winner starts early.
    return _screen_config(config, plan, timing, space, [*resized, *warm_starts], budget, n_trials=0)


def likeliest_final_run(config: StudyConfig, plan: Plan) -> RunConfig | None:
    """The run config a direct plan of ``plan``'s size would train (the first recipe, resized when far from the
    planned size); None when the study has no recipe with hidden layers. The planner times its steps."""
    screen = screen_study(config, dataclasses.replace(plan, direct=True))
    return _warm_start_run_config(screen, screen.warm_start[0]) if screen.warm_start else None


def screen_recipes(config: StudyConfig, plan: Plan) -> int:
    """How many warm starts a screen of ``plan``'s size would train before it samples (the planner's ``recipes``)."""
    return len(screen_study(config, dataclasses.replace(plan, direct=False)).warm_start)


def _screen_config(config: StudyConfig, plan: Plan, timing: TimingConfig, space: dict, warm_starts: list[WarmStart],
                   budget: int, n_trials: int) -> StudyConfig:
    return dataclasses.replace(
        config,
        study=dataclasses.replace(config.study, n_trials=n_trials, timeout_seconds=max(1.0, plan.screen_s),
                                  param_limit=budget),
        fidelity=dataclasses.replace(config.fidelity, train_fraction=1.0, full_train_fraction=1.0),
        timing=timing,
        sampler=dataclasses.replace(config.sampler, kind="prior", target_params=plan.final_params),
        pruner=SCREEN_PRUNER,
        space=space,
        warm_start=warm_starts,
    )


def _resized_warm_starts(config: StudyConfig, warm_starts: list[WarmStart], own_sizes: list[int],
                         target: int) -> dict[str, WarmStart]:
    """Each warm start with hidden layers and a width whose own size is more than RESIZE_FACTOR from ``target``,
    again at the largest width within ``target`` parameters (named ``<name>@<size>``), by the name it came from;
    none for one whose width the space's bounds keep where it is."""
    resized = {}
    for warm_start, own in zip(warm_starts, own_sizes):
        values = warm_start.values
        if "base_width" not in values or not values.get("hidden_layers"):
            continue
        if own / RESIZE_FACTOR <= target <= own * RESIZE_FACTOR:
            continue
        structure = {name: values[name] for name in STRUCTURE if name in values and name != "context_frames"}
        model = ModelConfig(**structure)
        io = ModelIO.of(dataclasses.replace(config.data, context_frames=values.get(
            "context_frames", config.data.context_frames)))
        width = max(8, max_base_width(model, io, target))
        low, high = config.space["base_width"].bounds()
        width = min(high, max(low, width))
        if width == values["base_width"]:
            continue
        label = f"{target / 1e6:.1f}M" if target >= 1e6 else f"{target // 1000}k"
        resized[warm_start.name] = WarmStart(f"{warm_start.name}@{label}", {**values, "base_width": width})
    return resized


def run_screen(screen: StudyConfig, state: JobState, clock: BudgetClock, plan: Plan, workers: int,
            gpus: Sequence[str], progress: bool) -> None:
    left = plan.screen_end - clock.spent
    margin = min(SEARCH_MARGIN_S, 0.1 * plan.screen_s)
    end = plan.screen_end
    if plan.direct:
        workers = 1  # one trial: a second worker would only take half the cores from it
        # Its one trial is the final run's start, so a slow worker start must not cut it (the final run prices
        # what is left from the clock): the hard stop waits up to another trial's length, for a machine under load.
        end += plan.trial_seconds
    if left > margin:
        logger.info("screen: %s left with %d worker(s); every trial the first %s of its final run, at the planned "
                    "size of %s parameters", format_seconds(left), workers, format_seconds(plan.trial_seconds),
                    f"{plan.final_params:,}")
        timed = dataclasses.replace(screen, study=dataclasses.replace(
            screen.study, timeout_seconds=max(1.0, left - margin)))
        run_search(timed, workers=workers, gpus=gpus, progress=progress, deadline=clock.deadline_at(end),
                   status=lambda: job_status("screen", clock, end))
    for _attempt in range(SCREEN_EXTENSIONS):
        if _screened(screen) and rank_complete_trials(open_study(screen).get_trials(deepcopy=False)):
            break
        # The deadline cut every trial (a slow machine, a tiny budget): the interrupted trials were re-queued to
        # resume from their checkpoints, so a little more time completes one rather than ending with nothing.
        most = clock.left - plan.reserve_s - MIN_FINAL_SHARE * plan.final_seconds
        extra = min(most, max(plan.trial_seconds * workers, MIN_EXTENSION_S))
        if extra < MIN_EXTENSION_S:
            break
        logger.warning("the screen ended with no complete trial; extending it by %s", format_seconds(extra))
        timed = dataclasses.replace(screen, study=dataclasses.replace(screen.study, timeout_seconds=extra))
        run_search(timed, workers=workers, gpus=gpus, progress=progress,
                   deadline=clock.deadline_at(clock.spent + extra))
    if not _screened(screen) or screen_winner(screen) is None:
        raise BudgetError(
            f"the screen ended before any trial started, and the {format_seconds(clock.left)} left cannot pay for "
            f"one at this machine's speed (a trial is {format_seconds(plan.trial_seconds)} of training plus starting "
            "its worker); give a larger --budget to continue this job, or run it over with --fresh"
        )
    state.mark_done("screen")


def _screened(screen: StudyConfig) -> bool:
    """Whether the screen's study exists yet (a screen whose time was gone before it began created none)."""
    try:
        open_study(screen)
    except StorageError:
        return False
    return True


def screen_winner(screen: StudyConfig) -> FrozenTrial | None:
    """The screen's best COMPLETE trial; when the deadline cut every trial, the cut trial that got furthest (most
    evaluations, then the best last one), whose checkpoint the final run continues; when none reported an evaluation
    (a busy machine's workers spent the screen starting), the first trial that started: the first warm start, at the
    planned size, which the final run then trains from its beginning; None when no trial started."""
    trials = open_study(screen).get_trials(deepcopy=False)
    ranked = rank_complete_trials(trials)
    if ranked:
        return ranked[0]
    cut = [trial for trial in trials if trial.state.is_finished() and trial.intermediate_values]
    if cut:
        return max(cut, key=lambda trial: (len(trial.intermediate_values),
                                           trial.intermediate_values[max(trial.intermediate_values)], -trial.number))
    started = [trial for trial in trials if trial.state.is_finished() and trial.params]
    return min(started, key=lambda trial: trial.number) if started else None


def job_status(phase: str, clock: BudgetClock, phase_end: float | None) -> str:
    """``screen, 1 min 02 s left of it, 7 min 40 s of 10 min 00 s left``: where the job is, for its progress lines."""
    of_phase = f", {format_seconds(max(0.0, phase_end - clock.spent))} left of it" if phase_end is not None else ""
    return f"{phase}{of_phase}, {format_seconds(max(0.0, clock.left))} of {format_seconds(clock.budget_s)} left"


def screen_standings(screen: StudyConfig, config_warm_starts: Sequence[WarmStart], direct: bool = False
                     ) -> dict[str, Any]:
    """How the screen ended, for the summary: the winner, and each warm start's result at the same fidelity."""
    trials = open_study(screen).get_trials(deepcopy=False)
    ranked = rank_complete_trials(trials)
    winner = screen_winner(screen)
    evaluations = screen.timing.evaluations

    def last_value(trial: FrozenTrial) -> float | None:
        reported = trial.intermediate_values
        return trial.value if trial.value is not None else (reported[max(reported)] if reported else None)

    best = last_value(winner)

    def standing(trial: FrozenTrial) -> dict[str, Any]:
        value = last_value(trial)
        return {"trial": trial.number, "state": trial.state.name, "screen_accuracy": value,
                "evaluations": f"{max(trial.intermediate_values, default=0)}/{evaluations}",
                "param_count": trial.user_attrs.get(attrs.PARAM_COUNT),
                "behind_winner_points": None if value is None or best is None else round(100 * (best - value), 2)}

    def progress(trial: FrozenTrial) -> tuple:
        return (trial.state == TrialState.COMPLETE, len(trial.intermediate_values), trial.state.is_finished(),
                -trial.number)

    # A recipe the deadline cut was re-queued (a WAITING retry that may never run): its standing is its furthest try.
    furthest: dict[str, FrozenTrial] = {}
    for trial in trials:
        name = trial.user_attrs.get(attrs.WARM_START)
        if name and (name not in furthest or progress(trial) > progress(furthest[name])):
            furthest[name] = trial
    recipes = {name: standing(trial) for name, trial in furthest.items()}
    origin = winner.user_attrs.get(attrs.WARM_START)
    if origin is None and attrs.MUTATED_FROM in winner.user_attrs:
        origin = f"a mutation of trial {winner.user_attrs[attrs.MUTATED_FROM]}"
    screened = {entry.name for entry in screen.warm_start}
    first = screen.warm_start[0].name if screen.warm_start else None

    def why_not(entry: WarmStart) -> str:
        if not entry.values.get("hidden_layers", 1):
            return ("it has no hidden layer, so it cannot be sized to the plan, and a far smaller model wins a short "
                    "trial for its speed alone")
        if direct:
            return f"the budget holds no comparison (the plan is direct): {first} alone trained the whole time"
        return "it is far smaller than the planned size; screened resized instead"

    not_screened = {entry.name: why_not(entry) for entry in config_warm_starts if entry.name not in screened}
    return {"winner": {**standing(winner), "from": origin or "the base sampler"}, "warm_starts": recipes,
            "not_screened": not_screened, "complete_trials": len(ranked), "trials": len(trials),
            "trial_seconds": screen.timing.trial_seconds, "dev_share": screen.timing.dev_fraction}
