"""The one trial runner: train an Optuna trial's sampled model at one fidelity and record it on the trial.

Search trials (``objective.py``), promoted full-data runs (``promote.py``) and ``phonetune run`` all go through
``train_trial``: the space turns the trial into a ``RunConfig`` (``suggest_run_config``), the model package's
``Trainer`` trains it into the run folder with data loaded once per process (``load_fidelity_data``), and after
every epoch (its checkpoint already written) an ``EpochRecorder`` (``records.py``) reports dev accuracy to
Optuna, records the curves and the trial's summary attributes and, for search trials, asks the pruner. Epochs inherited from an interrupted attempt's
checkpoint are reported again first, so the pruner and the dashboard see the whole history.

Example::

    data = load_fidelity_data(config, SEARCH_FIDELITY)
    result = train_trial(study.ask(), config, SEARCH_FIDELITY, data, config.paths.trial_dir(0))
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import optuna

from phonetune.data_pipeline.load import TrainingData, load_training_data
from phonetune.errors import ConfigError
from phonetune.model.run_files import EpochMetrics, TrainResult
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.records import EpochRecorder
from phonetune.search.space import fidelity_data_config, ignored_params, suggest_run_config


def load_fidelity_data(config: StudyConfig, fidelity: str, *, progress: bool = False) -> TrainingData:
    """Training (subsampled for ``fidelity``) and dev splits shared by every trial of that fidelity in a process."""
    return load_training_data(fidelity_data_config(config, fidelity), progress=progress)


def worker_name() -> str:
    """``host:pid`` of this process, as a trial records the worker that runs it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def train_trial(
    trial: optuna.Trial,
    config: StudyConfig,
    fidelity: str,
    data: TrainingData,
    out_dir: Path,
    *,
    progress: bool = False,
    expected_params: Mapping[str, Any] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    deadline: float | None = None,
) -> TrainResult:
    """Train ``trial`` at ``fidelity`` into ``out_dir`` (resuming its ``last.pt``) and record it; see the module doc.

    ``expected_params``: the parameters the trial must replay (a promoted run's source); a mismatch is a
    ConfigError before anything trains. Pruning (search trials) raises ``optuna.TrialPruned``.
    """
    from phonetune.model.trainer import Trainer  # torch: only once a trial really trains

    run_config = suggest_run_config(trial, config, fidelity, replays=expected_params)
    # What an older study drew for hyperparameters its model ignores is replayed, not drawn (suggest_run_config).
    expected = None if expected_params is None else {
        name: value for name, value in expected_params.items() if name not in ignored_params(expected_params)}
    if expected is not None and trial.params != expected:
        raise ConfigError(
            f"trial {trial.number} must replay the parameters {expected}, but the space of "
            f"{config.source} gave {trial.params}; was [space] edited after the search?"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    trial.set_user_attr(attrs.FIDELITY, fidelity)
    trial.set_user_attr(attrs.CHECKPOINT_DIR, config.paths.stored_run_dir(out_dir))
    trial.set_user_attr(attrs.WORKER, worker_name())
    searching = fidelity == attrs.SEARCH_FIDELITY
    # A trial's last report is never a pruning point: its epochs, or the evaluations of a time-boxed trial.
    reports = config.timing.evaluations if config.timing.enabled else config.fidelity.trial_epochs
    recorder = EpochRecorder(trial, reports if searching else None, on_epoch=on_epoch)
    started = time.perf_counter()
    trainer = Trainer(
        run_config,
        out_dir,
        data=data,
        epoch_callback=recorder,
        progress=progress,
        param_limit=config.param_limit,
        curves=not searching,  # curves.html inlines plotly (~5 MB): not worth it for every search trial
        deadline=deadline,
    )
    try:
        trainer.setup()
        recorder.inherit(trainer.result)
        result = trainer.train()
    finally:
        trial.set_user_attr(attrs.WALL_SECONDS, trainer.result.wall_seconds or time.perf_counter() - started)
        trainer.cleanup()
    recorder.record(result.wall_seconds)
    return result
