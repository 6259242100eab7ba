"""The job's screen (``phonetune.job.run``, step 2): which candidates it trains, for how long, and which one won.

A screened plan (``job.planner``) trains candidates at the size cap, each a whole run compressed to the trial
horizon (``search.timing``: its own schedule, linear, cosine or one-cycle, ending with it), on all the training
data, judged on a share of dev at its end. First the study's warm starts, each resized to the cap
(``expert@1.0M``), then the prior sampler's mutations of the best so far (``search.prior_sampler``: the learning
rate halved or doubled, context, depth against width at the same size, dropout, masking, the schedule), widening
to TPE as trials accumulate. ``--workers`` processes share the screen. The winner is the best complete trial; the
final run trains it from scratch at the final horizon (``job.final``).

A direct plan screens the first warm start alone, sized to the plan, as the first tenth of its final run on one
worker; the final run continues it.

A screen the deadline cut with no complete trial is extended once or twice, up to the plan's latest screen end,
rather than ending with nothing; only while it makes progress (a stretch that added no evaluation is not repeated).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from phonetune.errors import BudgetError, StorageError
from phonetune.job.clock import TimeLimit, format_seconds
from phonetune.job.planner import Plan
from phonetune.job.state import JobState
from phonetune.model.config import ModelConfig, ModelIO
from phonetune.model.params import count_params, max_base_width
from phonetune.model.speed import Speed
from phonetune.model.train_config import HORIZON_SHAPES, RunConfig
from phonetune.search import attributes as attrs
from phonetune.search.config import PrunerConfig, StudyConfig, TimingConfig, WarmStart
from phonetune.search.ranking import rank_complete_trials
from phonetune.search.space import STRUCTURE, suggest_run_config, warm_start_params
from phonetune.search.space_sizes import largest_model_of_space
from phonetune.search.space_spec import Choice
from phonetune.search.study import open_study
from phonetune.search.supervisor import run_search

logger = logging.getLogger(__name__)

# Workers stop starting trials this long before the screen's end, and are stopped at the end itself.
SEARCH_MARGIN_S = 5.0
# A screened trial evaluates on its dev share this often; the last evaluation, at its horizon, ranks it.
SCREEN_EVALUATIONS = 3
# A direct plan's one trial (the first tenth of its final run) evaluates this often, as the final run's start.
DIRECT_EVALUATIONS = 3
# Whole runs compared at their end are not cut early: stopping one halfway judges it before its decay.
SCREEN_PRUNER = PrunerConfig(kind="none", prune_warm_starts=False)
# A screen that ends with no complete trial is extended at most this often, by at least this long.
SCREEN_EXTENSIONS = 2
MIN_EXTENSION_S = 15.0
# A screen stops paying when this many searched trials beside the warm starts have not beaten the best of them by
# MIN_SEARCH_GAIN (about the standard error of an accuracy on the screen's share of the demo corpus's dev, a
# tenth of a point): the final run then takes the screen's remaining time, where a minute still buys accuracy.
SEARCHED_BEFORE_JUDGING = 4
MIN_SEARCH_GAIN = 0.002


def _warm_start_run_config(config: StudyConfig, warm_start: WarmStart) -> RunConfig:
    """The run config a warm start trains at the study's limit (what it leaves open drawn as a search would)."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(warm_start_params(config, warm_start))
    return suggest_run_config(study.ask(), config, attrs.FULL_FIDELITY)


def screen_study(config: StudyConfig, plan: Plan) -> StudyConfig:
    """The study as the screen runs it, decided once from the plan (a resumed job rebuilds the same one): whole runs
    at the trial horizon (a direct plan: the first tenth of its final run) on all the training data, the prior
    sampler aimed at the planned size, no pruning, the horizon schedules, every warm start with hidden layers
    resized to the planned size."""
    speed = Speed(**plan.speed)
    if plan.direct:
        # The trial's length is the plan's own (a tenth of the final run as first planned): a changed --budget moves
        # the final run's end, not the point where its first tenth stopped.
        timing = TimingConfig(trial_seconds=plan.trial_seconds, final_seconds=plan.final_seconds,
                              evaluations=DIRECT_EVALUATIONS, speed=speed, continues=True)
    else:
        timing = TimingConfig(trial_seconds=plan.trial_seconds, final_seconds=plan.final_seconds,
                              evaluations=SCREEN_EVALUATIONS, speed=speed)
    space = dict(config.space)
    # Every run of the job ends at its horizon: the three horizon schedules are sampled, unless the study fixes one.
    offered = space["scheduler"]
    fixed = offered.fixed_value() if offered.is_fixed() else None
    space["scheduler"] = (Choice(value=fixed) if fixed in HORIZON_SHAPES else Choice(choices=list(HORIZON_SHAPES)))
    depth = space["hidden_layers"]
    if depth.bounds()[1] >= 1 and depth.bounds()[0] < 1:
        # A model without hidden layers cannot be made the planned size: the screen compares models that have them.
        space["hidden_layers"] = dataclasses.replace(depth, low=1)
    warm_starts = []
    for entry in config.warm_start:
        values = dict(entry.values)
        if values.get("hidden_layers", 1) < 1:
            continue
        if "scheduler" in values and (fixed in HORIZON_SHAPES or values["scheduler"] not in HORIZON_SHAPES):
            values["scheduler"] = fixed if fixed in HORIZON_SHAPES else "linear"
        warm_starts.append(WarmStart(entry.name, values))
    warm_starts = [_resized(config, entry, plan.final_params) for entry in warm_starts]
    if plan.direct:
        warm_starts = warm_starts[:1]
    return dataclasses.replace(
        config,
        study=dataclasses.replace(config.study, n_trials=1 if plan.direct else 0,
                                  timeout_seconds=max(1.0, plan.screen_s or timing.trial_seconds),
                                  param_limit=plan.size_cap),
        fidelity=dataclasses.replace(config.fidelity, train_fraction=1.0, full_train_fraction=1.0),
        timing=timing,
        sampler=dataclasses.replace(config.sampler, kind="prior", target_params=plan.final_params),
        pruner=SCREEN_PRUNER,
        space=space,
        warm_start=warm_starts,
    )


def likeliest_final_run(config: StudyConfig, plan: Plan) -> RunConfig | None:
    """The run config a plan of ``plan``'s size would most likely train (the first warm start with hidden layers,
    at the planned size); None when the study has none. The planner times its steps."""
    screen = screen_study(config, plan)
    return _warm_start_run_config(screen, screen.warm_start[0]) if screen.warm_start else None


def first_sized_warm_start(config: StudyConfig) -> WarmStart | None:
    """The first warm start with hidden layers (one without cannot be sized to a plan): the model a direct plan
    trains and the one the planner prices; None when the study has none."""
    return next((entry for entry in config.warm_start if entry.values.get("hidden_layers", 1) >= 1), None)


def screened_warm_starts(config: StudyConfig) -> int:
    """How many warm starts a screen trains before it samples (the planner's ``warm_starts``)."""
    return max(1, sum(1 for entry in config.warm_start if entry.values.get("hidden_layers", 1) >= 1))


def _resized(config: StudyConfig, warm_start: WarmStart, target: int) -> WarmStart:
    """``warm_start`` at the largest width within ``target`` parameters (named ``<name>@<size>``); as it is when it
    has no width to change or is that size already. Where the space's widest ``base_width`` still leaves it under
    ``target``, it grows a hidden layer at a time within the space's ``hidden_layers``, each depth at the largest
    width that fits: the plan priced a model of ``target`` parameters, and a recipe kept at its own depth would train
    a smaller one than the time was planned for (BENCHMARKS.md, "The direct plan trains the size it
    priced")."""
    values = warm_start.values
    if "base_width" not in values or not values.get("hidden_layers"):
        return warm_start
    structure = {name: values[name] for name in STRUCTURE if name in values and name != "context_frames"}
    io = ModelIO.of(dataclasses.replace(config.data, context_frames=values.get(
        "context_frames", config.data.context_frames)))
    low, high = config.space["base_width"].bounds()
    deepest = max(values["hidden_layers"], config.space["hidden_layers"].bounds()[1])
    depth = values["hidden_layers"]
    model = dataclasses.replace(ModelConfig(**structure), hidden_layers=depth)
    width = min(high, max(low, max(8, max_base_width(model, io, target))))
    while width == high and depth < deepest:
        deeper = dataclasses.replace(model, hidden_layers=depth + 1)
        deeper_width = min(high, max_base_width(deeper, io, target)) if _fits(deeper, io, target) else 0
        if deeper_width < low or count_params(dataclasses.replace(deeper, base_width=deeper_width), io) <= \
                count_params(dataclasses.replace(model, base_width=width), io):
            break
        model, width, depth = deeper, deeper_width, depth + 1
    if width == values["base_width"] and depth == values["hidden_layers"]:
        return warm_start
    size = count_params(dataclasses.replace(model, base_width=width), io)
    label = f"{size / 1e6:.1f}M" if size >= 1e6 else f"{size // 1000}k"
    return WarmStart(f"{warm_start.name}@{label}", {**values, "base_width": width, "hidden_layers": depth})


def _fits(model: ModelConfig, io: ModelIO, target: int) -> bool:
    return count_params(dataclasses.replace(model, base_width=8), io) <= target


def warm_start_reach(config: StudyConfig) -> int:
    """The most parameters the first warm start with hidden layers can have within the space and the study's size
    cap (its widest ``base_width``, then deeper within ``hidden_layers``): the largest model a direct plan can train.
    0 when the study has no such warm start."""
    first = first_sized_warm_start(config)
    if first is None:
        return 0
    run_config = _warm_start_run_config(config, _resized(config, first, largest_model_of_space(config)))
    return count_params(run_config.model, run_config.io)


def run_screen(screen: StudyConfig, state: JobState, limit: TimeLimit, latest: TimeLimit, plan: Plan, workers: int,
               gpus: Sequence[str], progress: bool) -> None:
    """Train the screen's candidates until ``limit`` (less a margin in which no trial starts); when none completed
    by then, extend it toward ``latest``, the plan's latest screen end."""
    margin = min(SEARCH_MARGIN_S, 0.1 * max(plan.screen_s, screen.timing.trial_seconds))
    end = limit
    if plan.direct:
        workers = 1  # one trial: a second worker would only take half the cores from it
        # Its one trial is the final run's start, so a slow worker start must not cut it (the final run prices
        # what is left from the clock): the hard stop waits up to another trial's length.
        end = latest
    progress = screen_progress(screen) if _screened(screen) else 0
    searched = limit.left > margin
    if searched:
        if plan.direct:
            logger.info("screen: the first warm start alone, the first %s of its final run",
                        format_seconds(screen.timing.trial_seconds))
        else:
            logger.info("screen: %s with %d worker(s); every trial a whole run of %s at %s parameters",
                        format_seconds(limit.left), workers, format_seconds(screen.timing.trial_seconds),
                        f"{plan.final_params:,}")
        timed = dataclasses.replace(screen, study=dataclasses.replace(
            screen.study, timeout_seconds=max(1.0, limit.left - margin)))
        run_search(timed, workers=workers, gpus=gpus, progress=progress, deadline=end.deadline,
                   status=lambda: job_status("screen", end), stop_when=None if plan.direct else search_not_paying)
    for _attempt in range(SCREEN_EXTENSIONS):
        if _screened(screen) and rank_complete_trials(open_study(screen).get_trials(deepcopy=False)):
            break
        # The deadline cut every trial (a slow machine, a tiny budget): a little more time completes one rather
        # than ending with nothing, within the latest end the plan allows.
        extra = min(latest.left, max(screen.timing.trial_seconds, MIN_EXTENSION_S))
        if extra < MIN_EXTENSION_S:
            break
        now = screen_progress(screen) if _screened(screen) else 0
        if searched and now == progress:
            # The last stretch of screen added no evaluation (a retry that fails as its predecessor did, workers
            # that could not start): more of the same would spend the budget on nothing.
            logger.warning("the screen ended with no complete trial, and its last stretch added no evaluation: not "
                           "extending it")
            break
        progress, searched = now, True
        logger.warning("the screen ended with no complete trial; extending it by %s", format_seconds(extra))
        extended = limit.moved_to(limit.clock.spent + extra)
        timed = dataclasses.replace(screen, study=dataclasses.replace(screen.study, timeout_seconds=extra))
        run_search(timed, workers=workers, gpus=gpus, progress=progress, deadline=extended.deadline,
                   status=lambda: job_status("screen", extended))
    if not _screened(screen) or screen_winner(screen) is None:
        raise BudgetError(
            f"the screen ended before any trial started, and the {format_seconds(latest.clock.left)} left cannot pay "
            f"for one at this machine's speed (a trial is {format_seconds(screen.timing.trial_seconds)} of training "
            "plus starting its worker); give a larger --budget to continue this job, or run it over with --fresh"
        )
    state.mark_done("screen")


def search_not_paying(trials: Sequence[FrozenTrial]) -> str | None:
    """Why the screen should stop now: ``SEARCHED_BEFORE_JUDGING`` searched trials have completed and none beat the
    best warm start by ``MIN_SEARCH_GAIN``; None while the search pays or has not had its chance."""
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE and trial.value is not None]
    warm = [trial.value for trial in complete if trial.user_attrs.get(attrs.WARM_START)]
    searched = [trial.value for trial in complete if not trial.user_attrs.get(attrs.WARM_START)]
    if not warm or len(searched) < SEARCHED_BEFORE_JUDGING or max(searched) >= max(warm) + MIN_SEARCH_GAIN:
        return None
    return (f"{len(searched)} searched trials found nothing better than the warm starts (best {max(searched):.4f} "
            f"against {max(warm):.4f}), so the final run gets the screen's remaining time")


def screen_progress(screen: StudyConfig) -> int:
    """Evaluations the screen's trials have reported, each counted once for a trial and its retries (a retry
    resumes from its predecessor's checkpoint and reports its evaluations again, which are no new progress)."""
    reached: dict[int, set[int]] = {}
    for trial in open_study(screen).get_trials(deepcopy=False):
        history = trial.system_attrs.get("retry_history", [])  # Optuna's retry bookkeeping (attributes.py)
        reached.setdefault(history[0] if history else trial.number, set()).update(trial.intermediate_values)
    return sum(len(steps) for steps in reached.values())


def _screened(screen: StudyConfig) -> bool:
    """Whether the screen's study exists yet (a screen whose time was gone before it began created none)."""
    try:
        open_study(screen)
    except StorageError:
        return False
    return True


def screen_winner(screen: StudyConfig) -> FrozenTrial | None:
    """The screen's best COMPLETE trial; when the deadline cut every trial, the cut trial that got furthest (most
    evaluations, then the best last one); when none reported an evaluation, the first trial that started (the first
    warm start, at the planned size), which the final run then trains from its beginning; None when no trial
    started."""
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


def job_status(phase: str, limit: TimeLimit) -> str:
    """``screen, 1 min 02 s left of it, 7 min 40 s of 10 min 00 s left``: where the job is, for its progress lines."""
    clock = limit.clock
    return (f"{phase}, {format_seconds(max(0.0, limit.left))} left of it, {format_seconds(max(0.0, clock.left))} of "
            f"{format_seconds(clock.budget_s)} left")


def screen_standings(screen: StudyConfig, config_warm_starts: Sequence[WarmStart], direct: bool = False
                     ) -> dict[str, Any]:
    """How the screen ended, for the summary: the winner, and each warm start's result at the same horizon."""
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

    # A warm start the deadline cut was re-queued (a WAITING retry that may never run): its standing is its
    # furthest try.
    furthest: dict[str, FrozenTrial] = {}
    for trial in trials:
        name = trial.user_attrs.get(attrs.WARM_START)
        if name and (name not in furthest or progress(trial) > progress(furthest[name])):
            furthest[name] = trial
    standings = {name: standing(trial) for name, trial in furthest.items()}
    origin = winner.user_attrs.get(attrs.WARM_START)
    if origin is None and attrs.MUTATED_FROM in winner.user_attrs:
        kind = winner.user_attrs.get(attrs.MOVE) or "a mutation"
        origin = f"{kind} of trial {winner.user_attrs[attrs.MUTATED_FROM]}"
    screened = {entry.name.split("@")[0] for entry in screen.warm_start}
    first = screen.warm_start[0].name if screen.warm_start else None

    def why_not(entry: WarmStart) -> str:
        if not entry.values.get("hidden_layers", 1):
            return "it has no hidden layer, so it cannot be sized to the plan"
        if direct:
            return f"the plan is direct (no screen): {first} alone trained the whole time"
        return "not screened"

    not_screened = {entry.name: why_not(entry) for entry in config_warm_starts if entry.name not in screened}
    return {"winner": {**standing(winner), "from": origin or "the base sampler"}, "warm_starts": standings,
            "not_screened": not_screened, "complete_trials": len(ranked), "trials": len(trials),
            "trial_seconds": screen.timing.trial_seconds, "dev_share": screen.timing.dev_fraction}
