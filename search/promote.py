"""Promotion: retrain the best search trials on the full training data, in a linked ``<name>-full`` study.

A search trial is cheap (a subsample, a few epochs) so its ranking is a guess; promotion checks the guess. The K best
COMPLETE search trials are rebuilt from their parameters by the same space code that sampled them
(``run_config_from_params``), so the promoted run trains exactly the same model under the same parameter guard,
with ``[fidelity] full_train_fraction`` and ``full_epochs``. Each one becomes a trial of the full-data study in the
same storage (enqueued with the source's parameters, then asked and told), carrying ``source_trial`` and
``fidelity = "full"``, its per-epoch curves and its checkpoint folder ``studies/<name>/full/<source_number>/``.
The dashboard, export and report therefore show both fidelities side by side.

Re-running is safe: a source trial whose full-data run already completed is not retrained, and an interrupted one
(its trial left RUNNING by a killed process, failed here once its heartbeat is stale) is retried in a new trial that
resumes from the run folder's ``last.pt``. The Spearman rank correlation between search and full-data accuracy over
every promoted trial is returned and stored as the full study's user attr ``spearman_search_vs_full``.

Example::

    config = load_study_config("studies/demo.toml")
    result = promote_top_trials(config, top_k=2)
    print(result.spearman, [p.full_accuracy for p in result.promoted])
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import FrozenTrial, TrialState
from optuna_dashboard import save_note

from phonetune.data_pipeline.load import TrainingData
from phonetune.errors import ConfigError
from phonetune.model.run_files import CURVES_FILE, LAST_CHECKPOINT, METRICS_FILE, EpochMetrics, TrainResult
from phonetune.search import attributes as attrs
from phonetune.search.attributes import (
    FULL_FIDELITY,
    PROMOTED_SOURCES_ATTR,
    SEARCH_FIDELITY,
    SOURCE_STUDY_ATTR,
    SPEARMAN_ATTR,
    SPEARMAN_COUNT_ATTR,
)
from phonetune.search.config import StudyConfig
from phonetune.search.objective import copy_run_folder
from phonetune.search.optuna_private import live_trial
from phonetune.search.ranking import rank_complete_trials
from phonetune.search.runner import load_fidelity_data, train_trial
from phonetune.search.storage import TrialHeartbeat, fail_orphaned_trials, recover_stale_trials, trial_start_lock
from phonetune.search.study import open_study, storage_for

if TYPE_CHECKING:
    from phonetune.model.deadline import Deadline

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromotedTrial:
    source_number: int  # the search trial that was retrained
    full_number: int  # its trial in the full-data study
    search_accuracy: float  # the search trial's objective (its best dev accuracy at the search's fidelity)
    full_accuracy: float  # best dev accuracy after training on the full data
    param_count: int
    checkpoint_dir: Path  # studies/<name>/full/<source_number>/
    retrained: bool  # False when an earlier promote had already completed it


@dataclass(frozen=True)
class PromotionResult:
    full_study_name: str
    promoted: list[PromotedTrial]  # every completed full-data trial, best search accuracy first
    spearman: float | None  # None with fewer than two promoted trials or constant accuracies


def spearman_correlation(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Spearman's rho: the Pearson correlation of the two samples' ranks, ties given their average rank.

    Computed here with numpy rather than scipy so the package needs no scipy at run time; the tests compare it with
    ``scipy.stats.spearmanr``. None when fewer than two pairs, or when one sample is constant (rho is undefined).
    """
    if len(first) != len(second):
        raise ValueError(f"spearman_correlation needs samples of one length, got {len(first)} and {len(second)}")
    if len(first) < 2:
        return None
    ranks = [_average_ranks(np.asarray(sample, dtype=np.float64)) for sample in (first, second)]
    centred = [rank - rank.mean() for rank in ranks]
    scale = float(np.sqrt((centred[0] ** 2).sum() * (centred[1] ** 2).sum()))
    if scale == 0.0:
        return None
    return float((centred[0] * centred[1]).sum() / scale)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1, dtype=np.float64)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


# Below this many promoted trials a rank correlation says next to nothing (with 3, rho is one of four values).
MIN_TRIALS_FOR_SPEARMAN = 5


def describe_spearman(rho: float | None, count: int) -> str:
    """The correlation with its sample size, and a plain warning when the sample is too small to mean anything."""
    if rho is None:
        return f"undefined over {count} promoted trial{'s' if count != 1 else ''} (fewer than 2, or constant accuracy)"
    text = f"{rho:.3f} over K={count} promoted trials"
    if count < MIN_TRIALS_FOR_SPEARMAN:
        text += f" (too few to mean much: promote {MIN_TRIALS_FOR_SPEARMAN} or more to judge the search fidelity)"
    return text


def top_complete_trials(study: optuna.Study, top_k: int) -> list[FrozenTrial]:
    """The ``top_k`` COMPLETE trials with the highest objective, best first (ties: lower trial number first)."""
    if top_k < 1:
        raise ConfigError(f"--top must be at least 1, but got {top_k}")
    return rank_complete_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))[:top_k]


def _source_of(trial: FrozenTrial) -> int | None:
    source = trial.user_attrs.get(attrs.SOURCE_TRIAL)
    return int(source) if source is not None else None


def _queue_promotions(config: StudyConfig, full_study: optuna.Study, sources: list[FrozenTrial]) -> None:
    """Enqueue each source that has neither a completed nor a queued full-data trial."""
    # A trial left RUNNING by a killed promote is failed once its heartbeat is older than the grace period; its
    # source is then queued again and the new trial resumes from the run folder's last.pt.
    failed = fail_orphaned_trials(full_study, on_stale=None)
    failed += recover_stale_trials(full_study, config.study.grace_period, on_stale=None)
    if failed:
        logger.warning("full-data trials %s were left running by a stopped promote; retrying them", failed)
    trials = full_study.get_trials(deepcopy=False)
    done_or_queued = {
        _source_of(trial) for trial in trials if trial.state in (TrialState.COMPLETE, TrialState.WAITING)
    }
    running = {_source_of(trial) for trial in trials if trial.state == TrialState.RUNNING}
    for source in sources:
        if source.number in done_or_queued:
            continue
        if source.number in running:
            # Another promote (here or on another host) is training it; it stays that one's work.
            logger.info("search trial %d is being promoted by another process; leaving it to that one", source.number)
            continue
        full_study.enqueue_trial(
            source.params,
            user_attrs={attrs.SOURCE_TRIAL: source.number, attrs.FIDELITY: FULL_FIDELITY},
            skip_if_exists=False,
        )


def _train_full_trial(
    config: StudyConfig,
    search_study: optuna.Study,
    full_study: optuna.Study,
    trial: optuna.Trial,
    source: FrozenTrial,
    data: TrainingData,
    progress: bool,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    deadline: float | Deadline | None = None,
) -> None:
    """Train the asked trial on the full data, recording curves as it goes, and tell the study its result."""
    started = time.perf_counter()
    out_dir = config.paths.trial_dir(source.number, FULL_FIDELITY)
    searched = config.paths.run_dir_of(source.user_attrs.get(attrs.CHECKPOINT_DIR, ""))
    if config.timing.continues and not (out_dir / LAST_CHECKPOINT).exists() and (searched / LAST_CHECKPOINT).exists():
        # A time-boxed search trial is the start of this very run (same data, schedule held at full rate): the run
        # continues from it rather than training its first minutes again. The trainer checks the two configs agree.
        copy_run_folder(searched, out_dir)
        logger.info("search trial %d's run continues from its checkpoint in %s", source.number, searched)
    with TrialHeartbeat.for_trial(trial, config.study.heartbeat_interval):
        try:
            # The live trial replays the enqueued parameters and records them with their distributions.
            result = train_trial(
                trial, config, FULL_FIDELITY, data, out_dir, progress=progress, expected_params=source.params,
                on_epoch=on_epoch, deadline=deadline,
            )
        except BaseException:
            full_study.tell(trial, state=TrialState.FAIL)
            raise
    _link_runs(config, search_study, full_study, trial, source, result)
    full_study.tell(trial, result.best_dev_acc)
    logger.info(
        "search trial %d on the full data: best dev accuracy %.4f after %.2f epochs (%d evaluations, %.0f s)",
        source.number, result.best_dev_acc, result.history[-1].epochs_done if result.history else 0.0,
        len(result.history), time.perf_counter() - started,
    )


def _link_runs(config: StudyConfig, search_study: optuna.Study, full_study: optuna.Study, trial: optuna.Trial,
               source: FrozenTrial, result: TrainResult) -> None:
    """What the dashboard shows of a promotion: a note on each of the two trials naming the other, and the run's
    curves and metrics as Optuna artifacts of the full-data trial (the checkpoints stay in the run folder: copying
    up to 80 MB per run into the artifact store would only double the disk they take)."""
    run_dir = config.paths.trial_dir(source.number, FULL_FIDELITY)
    last = result.history[-1] if result.history else None
    epochs = last.epochs_done if last is not None and last.epochs_done else len(result.history)
    reported = source.intermediate_values
    searched = source.value if source.value is not None else reported[max(reported)] if reported else float("nan")
    verb, done = ("Continues", "Continued") if config.timing.continues else ("Retrains", "Retrained")
    save_note(trial, (
        f"## Full-data run of search trial {source.number}\n\n"
        f"{verb} trial **{source.number}** of study `{search_study.study_name}` (dev accuracy {searched:.4f} at the "
        f"search's fidelity) on all the training data: dev accuracy **{result.best_dev_acc:.4f}** after "
        f"{epochs:.3g} epochs.\n\nRun folder: `{config.paths.stored_run_dir(run_dir)}` under the study's "
        "artifacts folder; curves and metrics are this trial's artifacts."
    ))
    save_note(live_trial(search_study, source), (
        f"## Promoted\n\n{done} on all the training data as trial **{trial.number}** of study "
        f"`{full_study.study_name}`: dev accuracy **{result.best_dev_acc:.4f}** (here, at the search's fidelity: "
        f"{searched:.4f})."
    ))
    config.paths.artifact_store_path.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(config.paths.artifact_store_path))
    for name in (CURVES_FILE, METRICS_FILE):
        if (run_dir / name).is_file():
            upload_artifact(artifact_store=store, file_path=str(run_dir / name), study_or_trial=trial)


def promote_top_trials(
    config: StudyConfig,
    top_k: int,
    *,
    progress: bool = True,
    storage: optuna.storages.BaseStorage | None = None,
    source_numbers: Sequence[int] | None = None,
    data: TrainingData | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    deadline: float | Deadline | None = None,
) -> PromotionResult:
    """Retrain the ``top_k`` best complete search trials on the full data (skipping ones already done).

    ``source_numbers`` picks the search trials instead (``phonetune run`` promotes its plan one at a time), and
    ``data`` is the full training data when the caller has it loaded already; ``on_epoch`` sees each evaluation of
    the runs trained here, and ``deadline`` (a ``time.monotonic()`` value) is when a horizon schedule's run must
    end. Raises StorageError when the search study does not exist, ConfigError when it has no complete trial (or a
    named source is not COMPLETE).
    """
    storage = storage if storage is not None else storage_for(config, must_exist=True)
    search_study = open_study(config, SEARCH_FIDELITY, storage=storage)
    if source_numbers is None:
        sources = top_complete_trials(search_study, top_k)
    else:
        # A named source may also be a trial that a deadline cut (phonetune run ends with the best it has): its
        # checkpoint holds the evaluations it reported, and one cut before its first is trained from its start.
        usable = {trial.number: trial for trial in search_study.get_trials(deepcopy=False)
                  if trial.state == TrialState.COMPLETE or (trial.state.is_finished() and trial.params)}
        missing = [number for number in source_numbers if number not in usable]
        if missing:
            raise ConfigError(f"promotion sources must be search trials that completed or were cut while training, "
                              f"but {missing} were not")
        sources = [usable[number] for number in source_numbers]
    if not sources:
        raise ConfigError(
            f"promotion needs at least one COMPLETE search trial, but study {search_study.study_name!r} has none; "
            "run (or finish) `phonetune search` first"
        )
    full_study = open_study(config, FULL_FIDELITY, create=True, storage=storage)
    full_study.set_user_attr(SOURCE_STUDY_ATTR, search_study.study_name)
    # Two promoters (or a promoter and `phonetune run`) on one study, on one host or several: queueing under the
    # workers' start lock means each source is queued once, and each queued trial is asked by exactly one of them.
    with trial_start_lock(storage, config.paths.storage_url, full_study.study_name):
        _queue_promotions(config, full_study, sources)

    retrained: set[int] = set()
    search_trials = {trial.number: trial for trial in search_study.get_trials(deepcopy=False)}
    while True:
        # The check and the ask under the start lock: another promoter may take the last queued run between them,
        # and an ask with nothing queued would start a trial that names no source.
        with trial_start_lock(storage, config.paths.storage_url, full_study.study_name):
            if not any(trial.state == TrialState.WAITING for trial in full_study.get_trials(deepcopy=False)):
                break
            with warnings.catch_warnings():
                # Optuna warns that storage heartbeats are meant for Study.optimize; TrialHeartbeat beats for ask/tell.
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = full_study.ask()
        source = search_trials.get(_source_of(trial))  # type: ignore[arg-type]
        if source is None:
            # Not queued by promote (enqueued by hand, or naming a trial that is gone): nothing says what to train.
            full_study.tell(trial, state=TrialState.FAIL)
            logger.warning("full-data trial %d names no existing search trial; marked failed", trial.number)
            continue
        logger.info("promoting search trial %d to full-data trial %d", source.number, trial.number)
        if data is None:
            data = load_fidelity_data(config, FULL_FIDELITY, progress=progress)
        _train_full_trial(config, search_study, full_study, trial, source, data, progress, on_epoch, deadline)
        retrained.add(trial.number)

    return _summarize(config, search_study, full_study, retrained)


def _summarize(config: StudyConfig, search_study: optuna.Study, full_study: optuna.Study,
               retrained: set[int]) -> PromotionResult:
    search_trials = {trial.number: trial for trial in search_study.get_trials(deepcopy=False)}
    promoted = []
    for full_trial in full_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        source = search_trials.get(_source_of(full_trial))
        if source is None:
            continue
        reported = source.intermediate_values
        promoted.append(
            PromotedTrial(
                source_number=source.number,
                full_number=full_trial.number,
                # NaN: a source the deadline cut before its first evaluation (phonetune run trained it from scratch)
                search_accuracy=float(source.value if source.value is not None
                                      else reported[max(reported)] if reported else math.nan),
                full_accuracy=float(full_trial.value),
                param_count=int(full_trial.user_attrs.get(attrs.PARAM_COUNT, 0)),
                checkpoint_dir=config.paths.run_dir_of(full_trial.user_attrs.get(attrs.CHECKPOINT_DIR, "")),
                retrained=full_trial.number in retrained,
            )
        )
    promoted.sort(key=lambda item: (-item.search_accuracy, item.source_number))
    spearman = spearman_correlation(
        [item.search_accuracy for item in promoted], [item.full_accuracy for item in promoted]
    )
    full_study.set_user_attr(SPEARMAN_ATTR, spearman)
    full_study.set_user_attr(SPEARMAN_COUNT_ATTR, len(promoted))
    full_study.set_user_attr(PROMOTED_SOURCES_ATTR, [item.source_number for item in promoted])
    return PromotionResult(full_study.study_name, promoted, spearman)


def format_promotion(result: PromotionResult) -> str:
    """A small table of the promoted trials and the rank correlation, for the CLI."""
    lines = [f"{'search trial':>12}  {'full trial':>10}  {'search acc':>10}  {'full acc':>8}  {'params':>10}  run"]
    for item in result.promoted:
        lines.append(
            f"{item.source_number:>12}  {item.full_number:>10}  {item.search_accuracy:>10.4f}  "
            f"{item.full_accuracy:>8.4f}  {item.param_count:>10,}  {'trained' if item.retrained else 'kept'}"
        )
    lines.append(f"Spearman rank correlation, search vs full-data accuracy: {describe_spearman(result.spearman, len(result.promoted))}")
    lines.append(f"full-data study: {result.full_study_name}")
    return "\n".join(lines)
