"""``phonetune run``: the whole job under one wall-clock budget, resumable.

Steps, each skipped when a previous invocation finished it (the state lives in ``<artifacts>/run/state.json``):

1. **Prepare and plan.** Validate every split the job will read (train, dev and test: a missing test split is
   found now, not after the training), build their caches, time training steps on this machine
   (``model.speed_probe``) and split the budget (``job.planner``): the screen, the final run, a reserve. Nothing is
   written before the plan exists, so a refused start leaves no state behind.
2. **Screen.** A time-boxed search (``search.timing``): every candidate trains for the same wall time as the first
   minutes of the run it would become, on all the training data, at full learning rate, evaluated through a weight
   average; ASHA stops the weak ones early. The candidates: each ``[[warm_start]]`` recipe at its own size, each
   recipe also at the planned size (``expert@1.3M``), then the prior sampler's mutations of the best so far at that
   size, widening to TPE as trials accumulate. ``--workers`` processes share the screen.
3. **Final run.** The screen's best trial continues from its checkpoint to the deadline, its learning rate falling
   linearly to zero exactly when its time is up; the steps that time buys are priced from this very model's
   measured speed. It is the full-data run of the ``<name>-full`` study (``search.promote``).
4. **Final model.** The final run (or the ensemble of full-data runs that beats it on dev within the parameter
   budget, when the study has several); its test submission, scored when labels exist.
5. **Outputs.** The ablation sheet, the report and ``summary.json``, which says which candidate won and by how much
   over each warm start at the screen's equal fidelity.

The budget counts wall time across invocations: a killed job, started again with the same command, spends only
what is left (the time spent is saved every few seconds). A second ``phonetune run`` of the same study is refused
while one runs; changed options on a finished job are refused rather than ignored.

Example::

    outcome = run_job(load_study_config("studies/demo.toml"), budget_s=600, workers=2)
    print(outcome.summary_path, outcome.submission)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from phonetune.atomic import atomic_write_json
from phonetune.data_pipeline.load import load_split
from phonetune.errors import BudgetError, ConfigError, StorageError
from phonetune.job.clock import BudgetClock, format_seconds
from phonetune.job.planner import FINAL_EVALUATIONS, Plan, make_plan, reserve_seconds
from phonetune.job.state import STATE_FILE, JobState
from phonetune.model.budget import count_params, max_base_width
from phonetune.model.config import ModelConfig, ModelIO
from phonetune.model.run_files import EpochMetrics
from phonetune.model.speed import Speed
from phonetune.model.speed_probe import measure_run_step_seconds, measure_speed
from phonetune.model.train_config import RunConfig
from phonetune.results.export import write_ablation_sheet
from phonetune.results.report import write_report
from phonetune.search import attributes as attrs
from phonetune.search.config import PrunerConfig, StudyConfig, TimingConfig, WarmStart
from phonetune.search.ensemble import build_study_ensemble
from phonetune.search.promote import promote_top_trials
from phonetune.search.ranking import rank_complete_trials
from phonetune.search.resolved import study_tables
from phonetune.search.runner import load_fidelity_data
from phonetune.search.space import STRUCTURE, run_config_from_params, suggest_run_config, warm_start_params
from phonetune.search.space_budget import largest_model_of_space, smallest_budget_for_every_trial
from phonetune.search.space_spec import Choice
from phonetune.search.storage import job_lock, study_names
from phonetune.search.study import open_studies, open_study, storage_for
from phonetune.search.supervisor import run_search
from phonetune.search.timing import seconds_per_step

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
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


@dataclass
class JobOutcome:
    summary_path: Path
    submission: Path
    summary: dict[str, Any]


def job_settings(config: StudyConfig, workers: int, gpus: Sequence[str], max_members: int) -> dict[str, Any]:
    """What a job's results depend on besides its budget: the study as resolved (a digest), and the options."""
    resolved = json.dumps(study_tables(config), sort_keys=True, default=str)
    return {"config": hashlib.sha256(resolved.encode()).hexdigest()[:16], "workers": workers, "gpus": list(gpus),
            "max_members": max_members}


def run_job(
    config: StudyConfig,
    budget_s: float,
    *,
    workers: int = 1,
    gpus: Sequence[str] = (),
    max_members: int = 4,
    sheet_path: str | Path | None = None,
    progress: bool = True,
    fresh: bool = False,
) -> JobOutcome:
    """Run or continue the job of ``config`` under ``budget_s`` seconds of wall time; see the module docstring.
    ``fresh`` starts the study's job over: its trials, run folders and state are deleted first."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, but got {workers}")
    job_dir = config.paths.artifacts_path / "run"
    settings = job_settings(config, workers, gpus, max_members)
    # One job per study, held on the study's storage (a PostgreSQL study run from two machines has two run folders
    # but one storage); phonetune's own default storage folder is made first so that its lock has a place.
    if not config.study.storage:
        default_folder = Path(config.paths.storage_url[len("sqlite:///"):]).parent
        default_folder.mkdir(parents=True, exist_ok=True)
    with job_lock(config.paths.storage_url, config.name):
        if fresh:
            _start_over(config, job_dir)
        state = JobState.load(job_dir / STATE_FILE)
        if state is not None:
            finished = _check_rerun(state, budget_s, settings, job_dir)
            if finished is not None:
                return finished
        started = time.monotonic()
        test_frames = prepare_data(config, progress)
        spent_before = state.spent_s if state is not None else 0.0
        clock = BudgetClock(budget_s, spent_before + time.monotonic() - started, lambda spent: None)
        if state is None:
            # BudgetError here leaves nothing behind.
            plan = plan_job(config, clock.budget_s, clock.spent, workers, test_frames)
            state = JobState.new(job_dir / STATE_FILE, budget_s, settings)
            state.save(plan=plan.to_dict(), spent_s=clock.spent)
            logger.info("plan: %s", plan.describe())
        else:
            plan = Plan.from_dict(state.values.get("plan"), str(state.path))
            state.save(budget_s=budget_s, settings=settings)
            logger.info("continuing the job: %s spent of %s", format_seconds(clock.spent), format_seconds(budget_s))
        clock._save = lambda spent: state.save(spent_s=spent)
        with clock:
            screen = screen_study(config, plan)
            if not state.done("screen"):
                _screen(screen, state, clock, plan, workers, gpus, progress)
            final = _final_run(screen, state, clock, plan, progress)
            model = _final_model(screen, state, config.param_budget, max_members, progress)
            summary = _outputs(config, screen, state, clock, plan, final, model, sheet_path)
        summary["spent_s"] = clock.spent
        summary_path = atomic_write_json(job_dir / SUMMARY_FILE, summary)
        state.mark_done("outputs")
    return JobOutcome(summary_path, Path(summary["submission"]), summary)


def _start_over(config: StudyConfig, job_dir: Path) -> None:
    """Delete what a job of this study left: both Optuna studies, every run folder, the state."""
    storage_file_path = config.paths.storage_url
    removed = []
    try:
        storage = storage_for(config, must_exist=True)
    except StorageError:
        storage = None  # no storage yet: nothing stored to delete
    if storage is not None:
        for fidelity in (attrs.SEARCH_FIDELITY, attrs.FULL_FIDELITY):
            name = config.study_name(fidelity)
            if name in study_names(storage):
                optuna.delete_study(study_name=name, storage=storage)
                removed.append(f"study {name!r}")
    artifacts = config.paths.artifacts_path
    for entry in sorted(artifacts.iterdir()) if artifacts.is_dir() else []:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(str(entry))
    logger.warning("--fresh: deleted %s (storage %s)", ", ".join(removed) or "nothing (no earlier job)",
                   storage_file_path)


def _check_rerun(state: JobState, budget_s: float, settings: dict, job_dir: Path) -> JobOutcome | None:
    """A finished job's outcome when this command repeats it exactly; ConfigError when it asks for something else.
    None: the job is unfinished and continues (a new budget counts from the job's start)."""
    changed = state.changed_settings(settings)
    if budget_s != state.budget_s:
        changed.append(f"--budget: {format_seconds(state.budget_s)} -> {format_seconds(budget_s)}")
    if state.done("outputs"):
        summary_path = job_dir / SUMMARY_FILE
        if changed:
            raise ConfigError(
                f"this study's job is finished, and this command differs from the one that ran it ({'; '.join(changed)}), "
                f"so repeating its result would misreport what ran. To run the job again with these settings, name a "
                f"new study (--set study.name=<new name>) or start this one over with --fresh"
            )
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            logger.info("this job finished earlier; its result:")
            return JobOutcome(summary_path, Path(summary["submission"]), summary)
        return None
    config_changed = [line for line in changed if line.startswith("config:")]
    if config_changed:
        raise ConfigError(
            f"the job in {job_dir} was started with another study config (its settings digest changed: "
            f"{config_changed[0]}); rerun with the same study file and --set options to continue it, or name a new "
            "study (--set study.name=<new name>), or start this one over with --fresh"
        )
    for line in changed:
        logger.info("continuing with a changed setting: %s", line)
    return None


def prepare_data(config: StudyConfig, progress: bool) -> int:
    """Validate and cache every split the job reads (train and dev through the training loader, test on its own);
    returns the test split's frame count."""
    load_fidelity_data(config, attrs.FULL_FIDELITY, progress=progress)
    test = load_split(config.data, config.data.test_split, progress=progress)
    return test.num_frames


def _recipe_sizes(config: StudyConfig) -> list[int]:
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


def plan_job(config: StudyConfig, budget_s: float, elapsed_s: float, workers: int, test_frames: int) -> Plan:
    """Time this machine on the study's training data and split ``budget_s`` (``elapsed_s`` of it spent before the
    call; the timing itself counts too)."""
    started = time.monotonic()
    data = load_fidelity_data(config, attrs.FULL_FIDELITY)
    speed = measure_speed(config.train.device, split=data.train)
    first = config.warm_start[0] if config.warm_start else None
    batch = int(first.values.get("batch_size", config.train.batch_size)) if first else config.train.batch_size
    return make_plan(
        budget_s, speed, train_frames=data.train.num_frames, dev_frames=data.dev.num_frames,
        test_frames=test_frames, param_budget=config.param_budget, max_epochs=config.fidelity.full_epochs,
        batch_size=batch, workers=workers, elapsed_s=elapsed_s + time.monotonic() - started,
        min_params=smallest_budget_for_every_trial(config), max_params=largest_model_of_space(config),
    )


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
    sizes = _recipe_sizes(config)
    # A recipe is screened at its own size unless it is far smaller than the planned size (a short trial would
    # favour it for its speed); a larger one is screened as it is, since the same bias only works against it.
    screened = [(recipe, own) for recipe, own in zip(recipes, sizes)
                if own * RESIZE_FACTOR >= plan.final_params and recipe.values.get("hidden_layers", 1) >= 1]
    resized = _resized_warm_starts(config, recipes, sizes, plan.final_params)
    budget = min(config.param_budget, max([plan.final_params, *(own for _recipe, own in screened)]))
    warm_starts = [recipe for recipe, _own in screened]
    return dataclasses.replace(
        config,
        study=dataclasses.replace(config.study, n_trials=0, timeout_seconds=max(1.0, plan.screen_s),
                                  param_budget=budget),
        fidelity=dataclasses.replace(config.fidelity, train_fraction=1.0, full_train_fraction=1.0),
        timing=timing,
        sampler=dataclasses.replace(config.sampler, kind="prior", target_params=plan.final_params),
        pruner=SCREEN_PRUNER,
        space=space,
        warm_start=[*resized, *warm_starts],  # the planned size first: the likelier winner starts early
    )


def _resized_warm_starts(config: StudyConfig, warm_starts: list[WarmStart], own_sizes: list[int],
                         target: int) -> list[WarmStart]:
    """Each warm start with hidden layers and a width whose own size is more than RESIZE_FACTOR from ``target``,
    again at the largest width within ``target`` parameters (named ``<name>@<size>``)."""
    resized = []
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
        resized.append(WarmStart(f"{warm_start.name}@{label}", {**values, "base_width": width}))
    return resized


def _screen(screen: StudyConfig, state: JobState, clock: BudgetClock, plan: Plan, workers: int,
            gpus: Sequence[str], progress: bool) -> None:
    left = plan.screen_end - clock.spent
    margin = min(SEARCH_MARGIN_S, 0.1 * plan.screen_s)
    if left > margin:
        logger.info("screen: %s left with %d worker(s); every trial the first %s of its final run, at the planned "
                    "size of %s parameters", format_seconds(left), workers, format_seconds(plan.trial_seconds),
                    f"{plan.final_params:,}")
        timed = dataclasses.replace(screen, study=dataclasses.replace(
            screen.study, timeout_seconds=max(1.0, left - margin)))
        run_search(timed, workers=workers, gpus=gpus, progress=progress, deadline=clock.deadline_at(plan.screen_end),
                   status=lambda: _status("screen", clock, plan.screen_end))
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
            f"the screen ended before any trial reported an evaluation, and the {format_seconds(clock.left)} left "
            f"cannot pay for one at this machine's speed (a trial is {format_seconds(plan.trial_seconds)} of training "
            "plus starting its worker); nothing was kept to continue from: give a larger --budget"
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
    evaluations, then the best last one), whose checkpoint the final run continues; None when none reported."""
    trials = open_study(screen).get_trials(deepcopy=False)
    ranked = rank_complete_trials(trials)
    if ranked:
        return ranked[0]
    cut = [trial for trial in trials if trial.state.is_finished() and trial.intermediate_values]
    if not cut:
        return None
    return max(cut, key=lambda trial: (len(trial.intermediate_values),
                                       trial.intermediate_values[max(trial.intermediate_values)], -trial.number))


def _final_run(screen: StudyConfig, state: JobState, clock: BudgetClock, plan: Plan, progress: bool) -> dict:
    """Continue the screen's best trial to the deadline (see the module docstring); its result as a dict."""
    if "final" not in state.values:
        winner = screen_winner(screen)
        if winner.state != TrialState.COMPLETE:
            logger.warning("no screen trial completed: the final run continues trial %d, which the screen's end cut "
                           "after %d of its %d evaluations", winner.number, len(winner.intermediate_values),
                           screen.timing.evaluations)
        run_config = run_config_from_params(screen, winner.params, attrs.FULL_FIDELITY)
        data = load_fidelity_data(screen, attrs.FULL_FIDELITY)
        params = count_params(run_config.model, run_config.io)
        batch = run_config.train.batch_size
        # The speed line priced the trial; this model's own steps, timed here with this process's threads, price
        # the rest of its run, so the decay reaches zero when the time is really up.
        measured = measure_run_step_seconds(run_config, data.train)
        predicted = seconds_per_step(screen.timing, params, batch)
        speed = Speed(**plan.speed)
        evaluating = FINAL_EVALUATIONS * speed.predict_seconds(params, data.dev.num_frames) * (measured / predicted)
        # What predicting with this very model costs (the plan priced the planned size, and a recipe screened at
        # its own size may have won).
        reserve = reserve_seconds(speed, params, plan.dev_frames + plan.test_frames) * (measured / predicted)
        wall = clock.left - reserve - evaluating
        if wall <= 0:
            logger.warning("no time is left to continue the final run (%s left, %s reserved for predicting): the "
                           "final model is the screen's best trial as it stands", format_seconds(clock.left),
                           format_seconds(reserve))
            wall = 0.0
        final_seconds = screen.timing.trial_seconds + wall * predicted / measured
        state.save(final={"source": winner.number, "final_seconds": final_seconds, "reserve_s": reserve,
                          "measured_step_s": measured, "predicted_step_s": predicted})
        logger.info("final run: search trial %d continues for %s (%s at %.1f ms a step, measured)", winner.number,
                    format_seconds(wall), f"{int(wall / measured):,} steps", 1000 * measured)
    final = state.values["final"]
    final_config = dataclasses.replace(
        screen, timing=dataclasses.replace(screen.timing, final_seconds=float(final["final_seconds"])))
    if not state.done("final"):
        def report(metrics: EpochMetrics) -> None:
            logger.info("%s | final run: step %s of %s, epoch %.2f, dev %.4f", _status("final", clock, None),
                        f"{metrics.step:,}", f"{metrics.total_steps:,}", metrics.epochs_done, metrics.dev_acc)

        result = promote_top_trials(final_config, 1, source_numbers=[int(final["source"])], progress=progress,
                                    on_epoch=report,
                                    deadline=clock.deadline_at(clock.budget_s - float(final["reserve_s"])))
        promoted = next(item for item in result.promoted if item.source_number == int(final["source"]))
        state.mark_done("final", final={**final, "dev_accuracy": promoted.full_accuracy,
                                        "param_count": promoted.param_count,
                                        "screen_accuracy": promoted.search_accuracy})
    return state.values["final"]


def _status(phase: str, clock: BudgetClock, phase_end: float | None) -> str:
    """``screen, 1 min 02 s left of it, 7 min 40 s of 10 min 00 s left``: where the job is, for its progress lines."""
    of_phase = f", {format_seconds(max(0.0, phase_end - clock.spent))} left of it" if phase_end is not None else ""
    return f"{phase}{of_phase}, {format_seconds(max(0.0, clock.left))} of {format_seconds(clock.budget_s)} left"


def _final_model(screen: StudyConfig, state: JobState, param_budget: int, max_members: int, progress: bool) -> dict:
    if not state.done("final_model"):
        result = build_study_ensemble(screen, max_members=max_members, param_budget=param_budget, progress=progress)
        state.mark_done("final_model", final_model=result.to_dict())
    return state.values["final_model"]


def screen_standings(screen: StudyConfig, config_warm_starts: Sequence[WarmStart]) -> dict[str, Any]:
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
                "behind_winner_points": None if value is None else round(100 * (best - value), 2)}

    recipes = {trial.user_attrs[attrs.WARM_START]: standing(trial) for trial in trials
               if trial.user_attrs.get(attrs.WARM_START)}
    origin = winner.user_attrs.get(attrs.WARM_START)
    if origin is None and attrs.MUTATED_FROM in winner.user_attrs:
        origin = f"a mutation of trial {winner.user_attrs[attrs.MUTATED_FROM]}"
    screened = {entry.name for entry in screen.warm_start}
    not_screened = {
        entry.name: ("it has no hidden layer, so it cannot be sized to the plan, and a far smaller model wins a "
                     "short trial for its speed alone") if not entry.values.get("hidden_layers", 1)
        else ("it is far smaller than the planned size; screened resized instead")
        for entry in config_warm_starts if entry.name not in screened
    }
    return {"winner": {**standing(winner), "from": origin or "the base sampler"}, "warm_starts": recipes,
            "not_screened": not_screened, "complete_trials": len(ranked), "trials": len(trials),
            "trial_seconds": screen.timing.trial_seconds, "dev_share": screen.timing.dev_fraction}


def _outputs(config: StudyConfig, screen: StudyConfig, state: JobState, clock: BudgetClock, plan: Plan,
             final: dict, model: dict, sheet_path: str | Path | None) -> dict:
    search_study, full_study = open_studies(screen)
    sheet = write_ablation_sheet(search_study, full_study, sheet_path or config.paths.artifacts_path / "ablation_sheet.csv")
    report_path = config.paths.artifacts_path / "report.html"
    write_report(search_study, full_study, report_path, param_budget=config.param_budget, space=screen.space)
    states: dict[str, int] = {}
    for trial in search_study.get_trials(deepcopy=False):
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    standings = screen_standings(screen, config.warm_start)
    return {
        "study": config.name,
        "budget_s": clock.budget_s,
        "plan": plan.to_dict(),
        "search_trials": states,
        "screen": standings,
        "final_run": final,
        "final_model": model,
        "submission": model["submission"],
        "test_accuracy": model["test_accuracy"],
        "sheet": str(sheet.sheet_path),
        "report": str(report_path),
    }
