"""``phonetune run``: the whole job under one wall-clock budget, resumable.

Steps, each skipped when a previous invocation finished it (the state lives in ``<artifacts>/run/state.json``):

1. **Plan.** Load and validate the data (building its cache), time training steps on this machine
   (``model.speed``) and split the budget (``job.planner``): the search's share, the final runs' share, a
   reserve, and the parameter cap that lets the final runs fit.
2. **Search.** The study with its ``[[warm_start]]`` trials first, ``--workers`` processes, pruning, models capped
   at the plan's size, until the search share is spent (``study.timeout_seconds`` and a hard stop).
3. **Final runs.** The best complete trials retrained on all the training data (``promote``), K and the epochs
   chosen for the time really left, each started only when its predicted time fits; the best candidate last, for
   every epoch the time then left allows (the runs before it have measured the real speed).
4. **Final model.** The best promoted run, or the ensemble of promoted runs that beats it on dev within the
   parameter budget (``search.ensemble``); its test submission, scored when labels exist.
5. **Outputs.** The ablation sheet and the report, then ``summary.json``.

The budget counts wall time across invocations: a killed job, started again with the same command, spends only
what is left. The state records the time spent every few seconds.

Example::

    outcome = run_job(load_study_config("studies/demo.toml"), budget_s=600, workers=2)
    print(outcome.summary_path, outcome.submission)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from optuna.trial import TrialState

from phonetune.atomic import atomic_write_json
from phonetune.errors import ConfigError
from phonetune.job.clock import BudgetClock, format_seconds
from phonetune.job.planner import Plan, make_plan, plan_final_runs, run_seconds
from phonetune.job.state import STATE_FILE, JobState
from phonetune.model.budget import count_params
from phonetune.model.run_files import LAST_CHECKPOINT
from phonetune.model.speed import Speed
from phonetune.model.speed_probe import measure_speed
from phonetune.results.export import write_ablation_sheet
from phonetune.results.report import write_report
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig, load_study_config
from phonetune.search.ensemble import build_study_ensemble
from phonetune.search.promote import describe_spearman, promote_top_trials
from phonetune.search.ranking import rank_complete_trials
from phonetune.search.runner import load_fidelity_data
from phonetune.search.space import run_config_from_params
from phonetune.search.space_budget import smallest_budget_for_every_trial
from phonetune.search.study import open_full_study, open_studies, open_study, storage_for
from phonetune.search.supervisor import run_search

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
# Workers stop starting trials this long before the search's end, and are stopped at the end itself.
SEARCH_MARGIN_S = 5.0
# Time left over after the search (a fast machine, a small corpus) buys the final runs more epochs, up to this many
# times the study's [fidelity] full_epochs.
MAX_EPOCHS_FACTOR = 4
# At most this many final runs, spare ones included (each one more ensemble candidate to predict dev and test with).
MAX_FINAL_RUNS = 6
# A trial "widens" for its final run when the final cap gives it at least this many times its search parameters.
WIDENS = 1.5


@dataclass
class JobOutcome:
    summary_path: Path
    submission: Path
    summary: dict[str, Any]


def _with_overrides(config: StudyConfig, extra: Sequence[str]) -> StudyConfig:
    """The same study file with more ``--set`` overrides on top of the command's own."""
    if config.source == "<memory>":
        raise ConfigError("phonetune run loads the study from its file, but this config was built in memory")
    return load_study_config(config.source, [*config.overrides, *extra])


def run_job(
    config: StudyConfig,
    budget_s: float,
    *,
    workers: int = 1,
    gpus: Sequence[str] = (),
    top_k: int | None = None,
    max_members: int = 4,
    sheet_path: str | Path | None = None,
    progress: bool = True,
) -> JobOutcome:
    """Run or continue the job of ``config`` under ``budget_s`` seconds of wall time; see the module docstring."""
    job_dir = config.paths.artifacts_path / "run"
    state = JobState.load(job_dir / STATE_FILE, budget_s)
    with BudgetClock(budget_s, float(state.values["spent_s"]), lambda spent: state.save(spent_s=spent)) as clock:
        plan = _plan(config, state, clock, top_k, progress)
        searched = _with_overrides(config, [
            f"study.param_budget={plan.search_cap}",
            "study.n_trials=0",
            f"study.timeout_seconds={max(1.0, plan.search_s - float(state.values.get('search_spent_s', 0.0)) - SEARCH_MARGIN_S):.0f}",
        ])
        if not state.done("search"):
            _search(searched, state, clock, plan, workers, gpus, progress)
        final = _final_runs(searched, state, clock, plan, progress)
        ensemble = _final_model(searched, state, config.param_budget, max_members, progress)
        summary = _outputs(searched, state, clock, plan, final, ensemble, sheet_path)
    summary["spent_s"] = clock.spent
    summary_path = atomic_write_json(job_dir / SUMMARY_FILE, summary)
    return JobOutcome(summary_path, Path(summary["submission"]), summary)


def _plan(config: StudyConfig, state: JobState, clock: BudgetClock, top_k: int | None,
          progress: bool) -> Plan:
    if "plan" in state.values:
        plan = Plan.from_dict(state.values["plan"])
        logger.info("continuing the job: %s spent of %s", format_seconds(clock.spent), format_seconds(clock.budget_s))
        return plan

    data = load_fidelity_data(config, attrs.FULL_FIDELITY, progress=progress)  # validates and caches the data
    speed = measure_speed(config.train.device)
    plan = make_plan(
        clock.budget_s, speed, train_frames=data.train.num_frames, dev_frames=data.dev.num_frames,
        param_budget=config.param_budget, target_epochs=config.fidelity.full_epochs,
        search_fraction=config.fidelity.train_fraction, search_epochs=config.fidelity.trial_epochs,
        elapsed_s=clock.spent, top_k=top_k, min_search_cap=smallest_budget_for_every_trial(config),
    )
    state.save(plan=plan.to_dict())
    print(f"plan: {plan.describe()}", flush=True)
    return plan


def _search(config: StudyConfig, state: JobState, clock: BudgetClock, plan: Plan, workers: int,
            gpus: Sequence[str], progress: bool) -> None:
    left = plan.search_s - float(state.values.get("search_spent_s", 0.0))
    started = clock.spent
    print(f"search: {format_seconds(left)} with {workers} worker(s), models up to {plan.search_cap:,} parameters",
          flush=True)
    try:
        summary = run_search(config, workers=workers, gpus=gpus, progress=progress,
                             deadline=clock.deadline_after(max(0.0, left)))
    finally:
        state.save(search_spent_s=float(state.values.get("search_spent_s", 0.0)) + clock.spent - started)
    if summary.best_number is None:
        raise ConfigError(
            f"the search share ({format_seconds(plan.search_s)}) ended with no COMPLETE trial in {config.describe()}; "
            "give a larger --budget"
        )
    state.mark_done("search", search_states=summary.states)


def _final_runs(config: StudyConfig, state: JobState, clock: BudgetClock, plan: Plan, progress: bool) -> dict:
    speed = Speed(**plan.speed)
    # The final runs are the search's trials at the final cap: the same parameters, wider where the cap bound them.
    wide = _with_overrides(config, [f"study.param_budget={plan.final_cap}"])
    study = open_study(config)
    complete = rank_complete_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    params = {}
    for trial in complete:
        run_config = run_config_from_params(wide, trial.params, attrs.FULL_FIDELITY)
        params[trial.number] = count_params(run_config.model, run_config.io)
    # A trial that the wider cap cannot widen (no hidden layers) was searched at its full capacity, while the others
    # were searched narrower than they will train: its search accuracy is not comparable, so it ranks after them.
    scales = {trial.number: params[trial.number] > WIDENS * int(trial.user_attrs.get(attrs.PARAM_COUNT, 0))
              for trial in complete}
    complete.sort(key=lambda trial: not scales[trial.number])
    max_epochs = max(plan.full_epochs, MAX_EPOCHS_FACTOR * config.fidelity.full_epochs)
    if "final_runs" not in state.values:
        chosen = plan_final_runs(
            [(trial.number, params[trial.number]) for trial in complete], clock.left - plan.reserve_s, speed,
            train_frames=plan.train_frames, dev_frames=plan.dev_frames, top_k=plan.top_k,
            min_epochs=plan.full_epochs, max_epochs=max_epochs,
        )
        state.save(final_runs=dataclasses.asdict(chosen))
        print(f"final runs: search trials {chosen.sources}: {chosen.why}", flush=True)
    final = state.values["final_runs"]
    final.setdefault("epochs_of", {})  # spare runs may train fewer epochs than the planned ones
    data = None
    result = None
    skipped = []
    # Measured wall time over predicted, of the runs trained so far: time left over after the plan buys further
    # final runs (more ensemble candidates) only when they fit at the speed really seen.
    slowdown: list[float] = []

    def epochs_of(source: int) -> int:
        return int(final["epochs_of"].get(str(source), final["epochs"]))

    def predicted_s(source: int, epochs: int) -> float:
        factor = max(slowdown) if slowdown else 1.0
        return factor * run_seconds(speed, params[source], epochs, plan.train_frames, plan.dev_frames)

    def fitting_epochs(source: int, most: int) -> int:
        left = clock.left - plan.reserve_s
        return next((count for count in range(most, 0, -1) if predicted_s(source, count) <= left), 0)

    ranked = [trial.number for trial in complete]
    best = final["sources"][0]
    # The best candidate trains last: the runs before it measure how fast a final run really goes here, and it then
    # takes every epoch the time left allows, since its accuracy is what the job ends with.
    queue = list(reversed(final["sources"]))
    while queue:
        source = queue.pop(0)
        full_study = open_full_study(config, storage_for(config))
        already = full_study is not None and any(
            trial.user_attrs.get(attrs.SOURCE_TRIAL) == source
            for trial in full_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        )
        if source == best and not already and str(source) not in final["epochs_of"]:
            fitting = fitting_epochs(source, max_epochs)
            if fitting:
                final["epochs_of"][str(source)] = fitting
                state.save(final_runs=final)  # before training, so a resumed run keeps its schedule
                print(f"final runs: the best, search trial {source}, trains last for the {fitting} epoch"
                      f"{'s' if fitting != 1 else ''} that fit ({format_seconds(predicted_s(source, fitting))} "
                      f"predicted of {format_seconds(clock.left - plan.reserve_s)} left)", flush=True)
        epochs = epochs_of(source)
        if not already and result is not None and predicted_s(source, epochs) > clock.left - plan.reserve_s:
            skipped.append(source)
            logger.warning("final run of search trial %d skipped: it needs about %s, %s are left", source,
                           format_seconds(predicted_s(source, epochs)), format_seconds(clock.left - plan.reserve_s))
            continue
        promoted_config = _with_overrides(wide, [f"fidelity.full_epochs={epochs}"])
        if data is None and not already:
            data = load_fidelity_data(promoted_config, attrs.FULL_FIDELITY, progress=progress)
        # Only a run trained from its first epoch measures the speed: a resumed one trains fewer epochs than planned.
        fresh = not already and not (wide.paths.trial_dir(source, attrs.FULL_FIDELITY) / LAST_CHECKPOINT).exists()
        started = time.monotonic()
        result = _promote_one(promoted_config, source, data, progress)
        if fresh:
            planned = run_seconds(speed, params[source], epochs, plan.train_frames, plan.dev_frames)
            slowdown.append((time.monotonic() - started) / planned)
        if not queue and len(final["sources"]) < MAX_FINAL_RUNS:
            spare = next((number for number in ranked if number not in final["sources"]), None)
            left = clock.left - plan.reserve_s
            fitting = fitting_epochs(spare, final["epochs"]) if spare is not None else 0
            if fitting:
                final["sources"].append(spare)
                final["epochs_of"][str(spare)] = fitting
                state.save(final_runs=final)
                queue.append(spare)
                print(f"final runs: time is left over, so search trial {spare} trains too, {fitting} epoch"
                      f"{'s' if fitting != 1 else ''} ({format_seconds(predicted_s(spare, fitting))} predicted of "
                      f"{format_seconds(left)} left)", flush=True)
    if result is None:
        raise ConfigError("no final run could be trained in the time left; give a larger --budget")
    state.save(final_skipped=skipped)
    return {"sources": final["sources"], "epochs": final["epochs"], "epochs_of": final["epochs_of"],
            "why": final["why"], "skipped": skipped,
            "final_cap": plan.final_cap, "spearman": result.spearman, "promoted": len(result.promoted),
            "runs": [{"search_trial": item.source_number, "search_accuracy": item.search_accuracy,
                      "full_accuracy": item.full_accuracy, "param_count": item.param_count} for item in result.promoted]}


def _promote_one(config: StudyConfig, source: int, data: Any, progress: bool) -> Any:
    """Promote one search trial. A run of it left RUNNING by a killed job is resumed from its checkpoint once its
    heartbeat has gone stale (``grace_period``), so this waits that long first."""
    full_study = open_full_study(config, storage_for(config))
    if full_study is not None and any(
        trial.user_attrs.get(attrs.SOURCE_TRIAL) == source
        for trial in full_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ):
        wait = config.study.grace_period + 2
        logger.warning("the final run of search trial %d was left RUNNING by a stopped job; waiting %d s for its "
                       "heartbeat to go stale, then resuming it from its checkpoint", source, wait)
        time.sleep(wait)
    return promote_top_trials(config, 1, source_numbers=[source], data=data, progress=progress)


def _final_model(config: StudyConfig, state: JobState, param_budget: int, max_members: int, progress: bool) -> dict:
    if not state.done("final_model"):
        result = build_study_ensemble(config, max_members=max_members, param_budget=param_budget, progress=progress)
        state.mark_done("final_model", final_model=result.to_dict())
    return state.values["final_model"]


def _outputs(config: StudyConfig, state: JobState, clock: BudgetClock, plan: Plan, final: dict, ensemble: dict,
             sheet_path: str | Path | None) -> dict:
    search_study, full_study = open_studies(config)
    sheet = write_ablation_sheet(search_study, full_study, sheet_path or config.paths.artifacts_path / "ablation_sheet.csv")
    report_path = config.paths.artifacts_path / "report.html"
    write_report(search_study, full_study, report_path, param_budget=plan.final_cap,
                 space=config.space)
    states: dict[str, int] = {}
    for trial in search_study.get_trials(deepcopy=False):
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    return {
        "study": config.name,
        "budget_s": plan.budget_s,
        "plan": plan.to_dict(),
        "search_trials": states,
        "final_runs": final,
        "spearman": describe_spearman(final["spearman"], final["promoted"]),
        "final_model": ensemble,
        "submission": ensemble["submission"],
        "test_accuracy": ensemble["test_accuracy"],
        "sheet": str(sheet.sheet_path),
        "report": str(report_path),
    }
