"""The objective: train one trial's sampled model on the search subsample, report dev accuracy, prune, record.

Per trial, ``runner.train_trial`` draws a ``RunConfig`` within the parameter limit (``[fidelity] trial_epochs`` epochs on
``train_fraction`` of the training utterances) and trains it into ``<artifacts>/trials/<number>/`` with the
worker's preloaded data, reporting and pruning after every epoch. The value is the best dev accuracy of any epoch
(maximized).

A trial re-queued because its worker died (``RetryHeartbeatStaleTrialCallback``) starts from a copy of the dead
attempt's run folder, so the trainer resumes after the last epoch whose checkpoint was written and finished epochs
are not trained again.

The attributes it records are listed in ``search/attributes.py``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import optuna

from phonetune.data_pipeline.load import TrainingData
from phonetune.model.run_files import LAST_CHECKPOINT
from phonetune.search import attributes as attrs
from phonetune.search.config import StudyConfig
from phonetune.search.optuna_private import retry_history
from phonetune.search.runner import train_trial

logger = logging.getLogger(__name__)


def seed_from_earlier_attempt(config: StudyConfig, lineage: list[int], out_dir: Path) -> int | None:
    """Copy the newest earlier attempt's run folder that holds a checkpoint into ``out_dir``; return its number.

    """
    if (out_dir / LAST_CHECKPOINT).exists():
        return None
    for number in reversed(lineage):
        source = config.paths.trial_dir(number)
        if (source / LAST_CHECKPOINT).exists():
            copy_run_folder(source, out_dir)
            return number
    return None


def copy_run_folder(source: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by a copy of the run folder ``source``, through a temporary sibling renamed into place, so
    a process killed while copying leaves no half-copied checkpoint for the next attempt to trip over."""
    staging = out_dir.with_name(f".{out_dir.name}.copying-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, staging)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)


class TrialObjective:
    """Callable objective holding a worker's preloaded data; one instance serves every trial of the worker."""

    def __init__(self, config: StudyConfig, data: TrainingData, *, progress: bool = False) -> None:
        self.config = config
        self.data = data  # the search subsample and dev, loaded once per worker
        self.progress = progress

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.config
        out_dir = config.paths.trial_dir(trial.number)
        lineage = retry_history(trial)
        if lineage:
            trial.set_user_attr(attrs.RETRIED_FROM, lineage[0])
            copied_from = seed_from_earlier_attempt(config, lineage, out_dir)
            logger.info("trial %d retries trial %d; checkpoint copied from trial %s", trial.number, lineage[0],
                        copied_from)
        elif out_dir.exists():
            # A fresh trial number whose folder exists is left over from a deleted study of the same name.
            aside = out_dir.with_name(f"{out_dir.name}.stale-{int(time.time())}")
            logger.warning("trial %d: moving the leftover folder %s aside to %s", trial.number, out_dir, aside)
            os.replace(out_dir, aside)
        result = train_trial(trial, config, attrs.SEARCH_FIDELITY, self.data, out_dir, progress=self.progress)
        return float(result.best_dev_acc)
