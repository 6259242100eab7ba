"""``phonetune run``: the whole job under one wall-clock budget, resumable.

Steps, each skipped when a previous invocation finished it (the state lives in ``<artifacts>/run/state.json``):

1. **Prepare and plan.** Validate every split the job will read (train, dev and test: a missing test split is
   found now, not after the training), build their caches, time training steps on this machine
   (``model.speed_probe``) and split the budget (``job.planner``, which hands each stage its end). Nothing is
   written before the plan exists, so a refused start leaves no state behind.
2. **Screen** (``job.screen``). In a screened plan, whole runs of the trial horizon at the size cap: the warm starts,
   then moves of the best so far. In a direct plan, the first warm start alone, the first tenth of its final run.
3. **Final run** (``job.final``). The screen's winner trained to the final stage's end, its learning rate reaching
   zero exactly then: from scratch (screened) or continuing its trial (direct). It is the full-data run of the
   ``<name>-full`` study (``search.promote``).
4. **Final model.** The final run (or the ensemble of full-data runs that beats it on dev within the parameter
   limit, when the study has several); its test submission, scored when labels exist.
5. **Outputs.** The ablation sheet, the report and ``summary.json``, which says which candidate won and by how much
   over each warm start at the screen's equal horizon.

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

from phonetune.atomic import atomic_write_json
from phonetune.data_pipeline.load import TrainingData, load_split
from phonetune.data_pipeline.split import SplitData
from phonetune.errors import BudgetError, CheckpointError, ConfigError, DataError, StorageError
from phonetune.job.clock import BudgetClock, TimeLimit, format_seconds
from phonetune.job.final import FinalRun, run_final
from phonetune.job.outputs import OUTPUTS_KEY, DamagedOutput, damaged_outputs, named_outputs, record_outputs
from phonetune.job.planner import WORKER_START_S, Plan, make_plan, outputs_seconds
from phonetune.job.screen import (
    first_sized_warm_start,
    likeliest_final_run,
    run_screen,
    screen_standings,
    screen_study,
    screened_warm_starts,
    warm_start_reach,
)
from phonetune.job.state import STATE_FILE, JobState
from phonetune.model.decode import decode_seconds
from phonetune.model.params import count_params
from phonetune.model.run_files import BEST_CHECKPOINT
from phonetune.model.speed import Speed
from phonetune.model.speed_probe import measure_relative_step, measure_speed, probed_reference_step_s
from phonetune.results.dashboard import write_job_note
from phonetune.results.export import write_ablation_sheet
from phonetune.results.report import write_report
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.resolved import study_tables
from phonetune.search.runner import load_fidelity_data
from phonetune.search.final_model import build_final_model
from phonetune.search.space_sizes import largest_model_of_space, smallest_limit_for_every_trial
from phonetune.search.storage import check_storage_url, job_lock, study_names
from phonetune.search.study import open_studies, storage_for
from phonetune.search.supervisor import check_worker_count

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
# Seconds the planner times the likeliest final model for, on top of the probe, in rounds that alternate its spans
# with half as long of the probe's large model (the median round's ratio is kept).
REFIT_PROBE_S = 2.0
REFIT_ROUNDS = 3
# The share of the decode's and predicting's time that must be left for a job to still write the decoded labels.
LATE_DECODE_SHARE = 0.5


@dataclass
class JobOutcome:
    summary_path: Path
    submission: Path
    summary: dict[str, Any]


def study_values(config: StudyConfig) -> dict[str, str]:
    """The resolved study as dotted keys and JSON values (``fidelity.trial_epochs: 3``), kept in the job's state so
    that a rerun with another study names the settings it changed, not only that the digest did."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            flat[prefix] = json.dumps(value, sort_keys=True, default=str)

    walk("", study_tables(config))
    return flat


def _study_changes(before: Any, now: dict[str, str]) -> str | None:
    """``fidelity.trial_epochs: 3 -> 2; ...`` between the study values a state kept and this command's; None when the
    state kept none (a job started by an earlier phonetune)."""
    if not isinstance(before, dict):
        return None
    changed = [f"{key}: {before.get(key, '(unset)')} -> {now.get(key, '(unset)')}"
               for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)]
    shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
    return shown or None


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
    started_at: float | None = None,
) -> JobOutcome:
    """Run or continue the job of ``config`` under ``budget_s`` seconds of wall time; see the module docstring.
    ``fresh`` starts the study's job over: its trials, run folders and state are deleted first. ``started_at``: the
    ``time.monotonic()`` at which the budget began (the command's start, so its imports count); default now."""
    started = time.monotonic() if started_at is None else started_at
    check_worker_count(workers)
    if max_members < 1:
        raise ConfigError(f"--max-members must be at least 1, but got {max_members}")
    fixed_s = WORKER_START_S + outputs_seconds(budget_s)
    if budget_s < fixed_s:
        # Below the fixed costs no machine meets it: said at once, before the data is cached and the machine timed.
        raise BudgetError(f"--budget {format_seconds(budget_s)} cannot be met: a job needs at least "
                          f"{format_seconds(fixed_s)} for starting a worker and its outputs alone, plus "
                          "preparing and training; give a --budget of at least 1 min on a small corpus")
    job_dir = job_state_path(config).parent
    settings = job_settings(config, workers, gpus, max_members)
    values = study_values(config)
    # One job per study, held on the study's storage (a PostgreSQL study run from two machines has two run folders
    # but one storage); phonetune's own default storage folder is made first so that its lock has a place.
    if not config.study.storage:
        default_folder = Path(config.paths.storage_url[len("sqlite:///"):]).parent
        default_folder.mkdir(parents=True, exist_ok=True)
    if not fresh:
        # A finished job repeated exactly only reads, so it is reprinted without taking the job's lock: a study on a
        # read-only disk (or a copy kept for the record) still answers.
        finished = _intact_finished_job(job_dir, budget_s, settings, values, sheet_path)
        if finished is not None:
            logger.info("this job finished earlier; its result:")
            return finished
    check_storage_url(config.paths.storage_url)  # a URL that cannot work is refused before any state is written
    with job_lock(config.paths.storage_url, config.name):
        if fresh:
            _start_over(config, job_dir)
        state = JobState.load(job_dir / STATE_FILE)
        if state is not None:
            finished = _check_rerun(state, budget_s, settings, values, job_dir)
            if finished is not None:
                damaged = finished_outputs_damage(finished.summary)
                if damaged:
                    return _rebuild_outputs(config, state, finished, damaged, max_members, sheet_path, progress)
                logger.info("this job finished earlier; its result:")
                if sheet_path is not None and Path(sheet_path).resolve() != Path(finished.summary["sheet"]).resolve():
                    # The sheet is an export of the stored studies: asked for elsewhere, it is written there too.
                    search_study, full_study = open_studies(screen_study(config, Plan.from_dict(
                        state.values.get("plan"), str(state.path))))
                    sheet = write_ablation_sheet(search_study, full_study, sheet_path)
                    logger.info("sheet of the finished job also written to %s", sheet.sheet_path)
                return finished
        sizes = data_sizes(config, progress)
        test_frames = sizes[config.data.test_split]["frames"]
        if state is not None:
            check_same_data(state.values.get("data"), sizes, state.path)
        spent_before = state.spent_s if state is not None else 0.0
        clock = BudgetClock(budget_s, spent_before + time.monotonic() - started)
        if state is None:
            # BudgetError here leaves nothing behind.
            plan = plan_job(config, clock.budget_s, clock.spent, workers, test_frames)
            state = JobState.new(job_dir / STATE_FILE, budget_s, settings)
            state.save(plan=plan.to_dict(), spent_s=clock.spent, study_values=values, data=sizes)
            logger.info("plan:\n%s", plan.describe_text())
        else:
            plan = Plan.from_dict(state.values.get("plan"), str(state.path))
            if plan.budget_s != budget_s:
                # BudgetError here keeps the state as it was: the same command with the old budget still continues.
                plan = plan.rebudgeted(budget_s, clock.spent, state.done("screen"))
                state.save(plan=plan.to_dict())
                logger.info("replanned what is left for --budget %s:\n%s", format_seconds(budget_s),
                            plan.describe_text())
            state.save(budget_s=budget_s, settings=settings, study_values=values, starts=state.starts + 1)
            logger.info("continuing the job: %s spent of %s", format_seconds(clock.spent), format_seconds(budget_s))
            if state.done("final") and not state.done("outputs"):
                # The stages before are cut to their deadlines; this last one is not, so an overrun is said now.
                # Its decode is dropped where it does not fit (without_late_decode), so the least it needs is without.
                needed = last_step_seconds(plan, decode=False)
                if clock.left < needed:
                    logger.warning("%s of the budget is left, and the final model's predictions and outputs need about "
                                   "%s: this job will end about %s past its budget (the interruption's restart and "
                                   "the work it redoes)", format_seconds(max(clock.left, 0.0)), format_seconds(needed),
                                   format_seconds(needed - clock.left))
        final_done_before = state.done("final")  # this start redoes the final model's step
        with clock.saving(lambda spent: state.save(spent_s=spent)):
            screen = screen_study(config, plan)
            if not state.done("screen"):
                run_screen(screen, state, TimeLimit("screen", plan.stage_end("screen"), clock),
                           TimeLimit("screen", plan.latest_screen_end(), clock), plan, workers, gpus, progress)
            final = run_final(screen, state, TimeLimit("final", plan.stage_end("final"), clock), plan, progress)
            model = final_model_step(without_late_decode(screen, plan, clock.left, redone=final_done_before),
                                     state, config.param_limit, max_members, progress)
            summary = _outputs(config, screen, state, clock, plan, final, model, sheet_path)
        summary["spent_s"] = clock.spent
        summary["starts"] = state.starts
        summary_path = atomic_write_json(job_dir / SUMMARY_FILE, summary)
        state.mark_done("outputs")
    return JobOutcome(summary_path, Path(summary["submission"]), summary)


def job_state_path(config: StudyConfig) -> Path:
    """Where the job of ``config`` keeps its state; the job has been planned once this file exists."""
    return config.paths.artifacts_path / "run" / STATE_FILE


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


def _check_rerun(state: JobState, budget_s: float, settings: dict, values: dict[str, str],
                 job_dir: Path) -> JobOutcome | None:
    """A finished job's outcome when this command repeats it exactly; ConfigError when it asks for something else.
    None: the job is unfinished and continues (a new budget counts from the job's start)."""
    changed = state.changed_settings(settings)
    named = _study_changes(state.values.get("study_values"), values)
    if named is not None:
        changed = [f"config: {named}" if line.startswith("config:") else line for line in changed]
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
            return JobOutcome(summary_path, Path(summary["submission"]), summary)
        return None
    config_changed = [line for line in changed if line.startswith("config:")]
    if config_changed:
        raise ConfigError(
            f"the job in {job_dir} was started with another study config ({config_changed[0]}); rerun with the same study file and --set options to continue it, or name a new "
            "study (--set study.name=<new name>), or start this one over with --fresh"
        )
    for line in changed:
        logger.info("continuing with a changed setting: %s", line)
    return None


def _intact_finished_job(job_dir: Path, budget_s: float, settings: dict, values: dict[str, str],
                         sheet_path: str | Path | None) -> JobOutcome | None:
    """The outcome of a finished job that this command repeats exactly, when every output it names is as it wrote
    it and nothing new is asked (a sheet elsewhere); None otherwise (the locked path then decides). Writes nothing."""
    state = JobState.load(job_dir / STATE_FILE)
    if state is None or not state.done("outputs"):
        return None
    finished = _check_rerun(state, budget_s, settings, values, job_dir)
    if finished is None or finished_outputs_damage(finished.summary):
        return None
    if sheet_path is not None and Path(sheet_path).resolve() != Path(finished.summary["sheet"]).resolve():
        return None
    return finished


def finished_outputs_damage(summary: dict) -> list[DamagedOutput]:
    """What of a finished job's named outputs is no longer as it wrote them. A summary from before outputs were
    recorded has its files checked for being there."""
    if OUTPUTS_KEY in summary:
        return damaged_outputs(summary[OUTPUTS_KEY])
    return [DamagedOutput(label, str(path), "is missing")
            for label, path in named_outputs(summary, {}).items() if not Path(path).is_file()]


def _rebuild_outputs(config: StudyConfig, state: JobState, finished: JobOutcome, damaged: list[DamagedOutput],
                     max_members: int, sheet_path: str | Path | None, progress: bool) -> JobOutcome:
    """Make a finished job's missing or damaged outputs again from its final checkpoints and stored studies; a
    damaged checkpoint is named with the commands that train it again (CheckpointError)."""
    lost = [item for item in damaged if not item.rebuildable]
    if lost:
        raise CheckpointError(
            f"this study's job is finished, but its final model cannot be rebuilt: {'; '.join(map(str, lost))}. "
            "Train it again with the same command and --fresh (this deletes the study's trials and run folders), "
            "or keep them and name a new study with --set study.name=<new name>")
    started = time.monotonic()
    logger.warning("the finished job's outputs are not as it wrote them (%s): rebuilding them from its final "
                   "checkpoints and stored studies; the time this takes is outside the budget, which the job spent when it ran",
                   "; ".join(map(str, damaged)))
    plan = Plan.from_dict(state.values.get("plan"), str(state.path))
    screen = screen_study(config, plan)
    final = FinalRun.from_dict(state.values["final"])
    if all(item.export for item in damaged):
        model = state.values["final_model"]  # the exports only: rewritten from the stored studies
    else:
        state.save(done=[step for step in state.values["done"] if step not in ("final_model", "outputs")])
        model = final_model_step(screen, state, config.param_limit, max_members, progress)
    summary = _outputs(config, screen, state, BudgetClock(state.budget_s, state.spent_s), plan, final, model,
                       sheet_path if sheet_path is not None else finished.summary["sheet"])
    summary["spent_s"] = finished.summary["spent_s"]  # the job's own; the rebuild's time is said beside it
    summary["rebuilt"] = {"outputs": [str(item) for item in damaged], "seconds": time.monotonic() - started}
    summary_path = atomic_write_json(finished.summary_path, summary)
    if not state.done("outputs"):
        state.mark_done("outputs")
    logger.warning("rebuilt in %s: %s", format_seconds(summary["rebuilt"]["seconds"]),
                   ", ".join(item.label for item in damaged))
    return JobOutcome(summary_path, Path(summary["submission"]), summary)


def prepare_data(config: StudyConfig, progress: bool) -> int:
    """Validate and cache every split the job reads (train and dev through the training loader, test on its own);
    returns the test split's frame count."""
    return data_sizes(config, progress)[config.data.test_split]["frames"]


def data_sizes(config: StudyConfig, progress: bool) -> dict[str, dict[str, int]]:
    """Validate and cache every split the job reads; each split's utterances and frames, by split name."""
    data = load_fidelity_data(config, attrs.FULL_FIDELITY, progress=progress)
    test = load_split(config.data, config.data.test_split, progress=progress)
    return {name: {"utterances": split.num_utterances, "frames": split.num_frames}
            for name, split in ((config.data.train_split, data.train), (config.data.dev_split, data.dev),
                                (config.data.test_split, test))}


def check_same_data(kept: Any, now: dict[str, dict[str, int]], state_path: Path) -> None:
    """DataError when a split changed since the job started (a file added or deleted between a kill and the rerun):
    trials scored on other data cannot be compared with the ones before, nor a final run continued on it."""
    if not isinstance(kept, dict):
        return  # a state from before the sizes were kept
    changed = [f"{name}: {before.get('utterances')} utterances and {before.get('frames')} frames -> "
               f"{now[name]['utterances']} and {now[name]['frames']}"
               for name, before in sorted(kept.items())
               if isinstance(before, dict) and name in now and before != now[name]]
    if changed:
        raise DataError(
            f"the data changed since this job started ({'; '.join(changed)}; kept in {state_path}), so its trials "
            "would be scored on other data than the ones before. Restore the files and run the same command, or start "
            "the job over on the data as it is with --fresh")


def plan_sizes(config: StudyConfig, frames: tuple[int, int, int], workers: int) -> dict[str, Any]:
    """What ``make_plan`` needs besides the budget and the speed: the splits' frames (train, dev, test), the bounds
    of the study's models, the batch size its first warm start trains at, and what the screen and the reserve hold."""
    first = first_sized_warm_start(config)
    batch = int(first.values.get("batch_size", config.train.batch_size)) if first else config.train.batch_size
    train_frames, dev_frames, test_frames = frames
    return dict(train_frames=train_frames, dev_frames=dev_frames, test_frames=test_frames,
                param_limit=config.param_limit, batch_size=batch, workers=workers,
                min_params=smallest_limit_for_every_trial(config), max_params=largest_model_of_space(config),
                warm_starts=screened_warm_starts(config), decode=config.decode.mode != "off",
                reachable_params=warm_start_reach(config))


def preview_plan(config: StudyConfig, budget_s: float, workers: int, *, speed: Speed | None = None,
                 frames: tuple[int, int, int] | None = None, prepare_s: float = 0.0, progress: bool = False) -> Plan:
    """The plan ``run_job`` would make, without training (``phonetune plan``). With ``speed`` (another machine's
    line) and ``frames`` (train, dev and test frames) nothing is read or timed, and ``prepare_s`` stands for that
    machine's preparing; without them the data is validated and cached and this machine is timed, as a job does."""
    if speed is None:
        started = time.monotonic()
        test_frames = prepare_data(config, progress)
        return plan_job(config, budget_s, time.monotonic() - started, workers, test_frames)
    if frames is None:
        data = load_fidelity_data(config, attrs.FULL_FIDELITY, progress=progress)
        test = load_split(config.data, config.data.test_split, progress=progress)
        frames = (data.train.num_frames, data.dev.num_frames, test.num_frames)
    return make_plan(budget_s, speed, elapsed_s=prepare_s, **plan_sizes(config, frames, workers))


def plan_job(config: StudyConfig, budget_s: float, elapsed_s: float, workers: int, test_frames: int) -> Plan:
    """Time this machine on the study's training data and split ``budget_s`` (``elapsed_s`` of it spent before the
    call; the timing itself counts too)."""
    started = time.monotonic()
    data = load_fidelity_data(config, attrs.FULL_FIDELITY)
    speed = measure_speed(config.train.device, split=data.train)
    sizes = plan_sizes(config, (data.train.num_frames, data.dev.num_frames, test_frames), workers)
    plan = make_plan(budget_s, speed, elapsed_s=elapsed_s + time.monotonic() - started, **sizes)
    refit = _refit_speed(config, speed, plan, data.train)
    if refit is None:
        return plan
    plan = make_plan(budget_s, refit[0], elapsed_s=elapsed_s + time.monotonic() - started, **sizes)
    return dataclasses.replace(plan, refit_step=refit[2])


def _refit_speed(config: StudyConfig, speed: Speed, plan: Plan, train: SplitData) -> tuple[Speed, str, dict] | None:
    """The speed line refit through a measured step of the model ``plan`` would most likely train, a line saying so
    and that step's figures (``Plan.refit_step``); None when the study has no warm start with hidden layers.

    The probe's models are generic (no dropout, one width), and what a warm start adds can cost more per parameter
    than they do, which would plan a model larger than FRAMES_PER_PARAM asks for and leave the final run to find out
    (BENCHMARKS.md, "Faster dropout on the CPU, and a plan priced from the model it trains"). The step is timed
    against the probe's large model in alternating spans, and the line is refit through that ratio times the
    reference's faster time (the probe's or now): timed alone, the step would carry the host's load of that moment
    into the whole plan (BENCHMARKS.md, "The refit's step timed beside the probe's model")."""
    run_config = likeliest_final_run(config, plan)
    if run_config is None:
        return None
    params = count_params(run_config.model, run_config.io)
    batch = run_config.train.batch_size
    step = measure_relative_step(run_config, train, seconds=REFIT_PROBE_S, rounds=REFIT_ROUNDS)
    reference_probed = probed_reference_step_s(speed)
    measured = step.priced_step_s(speed)
    line = speed.seconds_per_frame(params, batch) * batch
    refit = speed.through(params, batch, measured)
    note = (f"speed line refit through a step of {params:,} parameters at batch {batch}: {step.relative:.2f} times "
            f"the probe's model's beside it ({1000 * step.run_step_s:.2f} against "
            f"{1000 * step.reference_step_s:.2f} ms; the probe timed that model at {1000 * reference_probed:.2f} ms), "
            f"so {1000 * measured:.2f} ms, the probe's line {1000 * line:.2f} ms")
    logger.debug("%s", note)
    return refit, note, {"params": params, "batch_size": batch, "measured_s": measured, "line_s": line,
                         "run_step_s": step.run_step_s, "reference_step_s": step.reference_step_s,
                         "reference_probed_s": reference_probed, "relative": step.relative}


def last_step_seconds(plan: Plan, decode: bool = True) -> float:
    """About how long the final model's step and the outputs take: predicting dev and test, the decode (unless
    ``decode`` is False), the pages."""
    return ((decode_seconds(plan.dev_frames, plan.test_frames) if decode else 0.0) + outputs_seconds(plan.budget_s)
            + Speed(**plan.speed).predict_seconds(plan.final_params, plan.dev_frames + plan.test_frames))


def without_late_decode(screen: StudyConfig, plan: Plan, left_s: float, *, redone: bool = False) -> StudyConfig:
    """``screen`` with ``[decode] mode = "off"`` when the decode would only add labels beside the submission
    (``argmax``, the default) and the time left cannot pay for it and for predicting: a resumed job that must redo
    its final model (a Ctrl-C in it, ``redone``) then ends inside its budget with the network's own labels."""
    if screen.decode.mode != "argmax":
        return screen
    needed = last_step_seconds(plan)
    # A job on time reaches this with about ``needed`` left (the final run's deadline keeps it), give or take the
    # machine's load, so it keeps the decode down to half of that. A job that redoes the step has paid a restart
    # since and is late by what it redoes: it keeps the decode only where all of it fits.
    if left_s >= (1.0 if redone else LATE_DECODE_SHARE) * needed:
        return screen
    logger.warning("%s left, and the sequence decode's labels beside the submission need about %s more: the "
                   "submission is the network's own labels alone", format_seconds(max(left_s, 0.0)),
                   format_seconds(needed))
    return dataclasses.replace(screen, decode=dataclasses.replace(screen.decode, mode="off"))


def final_model_step(screen: StudyConfig, state: JobState, param_limit: int, max_members: int,
                      progress: bool) -> dict:
    """The final model (``phonetune.job.run``, step 4): the final run, or an ensemble of full-data runs within the
    parameter limit that beats it on dev; its submission, scored when test labels exist."""
    if not state.done("final_model"):
        result = build_final_model(screen, max_members=max_members, param_limit=param_limit, progress=progress)
        state.mark_done("final_model", final_model=result.to_dict())
    return state.values["final_model"]


def _outputs(config: StudyConfig, screen: StudyConfig, state: JobState, clock: BudgetClock, plan: Plan,
             final: FinalRun, model: dict, sheet_path: str | Path | None) -> dict:
    search_study, full_study = open_studies(screen)
    # What ran, where a student looks first: the report's summary and the dashboard's study attributes.
    what_ran = dict(plan.describe())
    what_ran["final model"] = (f"{model['chosen']} of search trials {model['members']}, {model['param_count']:,} "
                               f"parameters; dev {model['dev_accuracy']:.4f} by its argmax"
                               + (f"; test {model['test_argmax_accuracy']:.4f} by its argmax"
                                  if model.get("test_argmax_accuracy") is not None else ""))
    search_study.set_user_attr(attrs.JOB_ATTR, what_ran)
    if full_study is not None:
        full_study.set_user_attr(attrs.JOB_ATTR, what_ran)
    sheet = write_ablation_sheet(search_study, full_study, sheet_path or config.paths.artifacts_path / "ablation_sheet.csv")
    report_path = config.paths.artifacts_path / "report.html"
    write_report(search_study, full_study, report_path, param_limit=config.param_limit, space=screen.space)
    # Where a student looks in the dashboard: each study's Note page, the final model first.
    write_job_note(search_study, full_study, what_ran, model, report_path)
    states: dict[str, int] = {}
    for trial in search_study.get_trials(deepcopy=False):
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    standings = screen_standings(screen, config.warm_start, direct=plan.direct)
    summary = {
        "study": config.name,
        "budget_s": clock.budget_s,
        "plan": plan.to_dict(),
        "search_trials": states,
        "screen": standings,
        "final_run": final.to_dict(),
        "final_model": model,
        "submission": model["submission"],
        "test_accuracy": model["test_accuracy"],
        "sheet": str(sheet.sheet_path),
        "changes": str(sheet.changes_path),
        "report": str(report_path),
    }
    checkpoints = {number: screen.paths.trial_dir(number, attrs.FULL_FIDELITY) / BEST_CHECKPOINT
                   for number in model["members"]}
    summary[OUTPUTS_KEY] = record_outputs(named_outputs(summary, checkpoints))
    return summary
