"""Retrain the study's winner on all the training data (optionally plus dev), then predict and score test-clean.

The winner is the best full-data trial when ``phonetune promote`` has run (its accuracy was measured at the fidelity
that matters), else the best search trial; ``--trial N`` picks search trial N instead. Its run config is rebuilt from
its parameters by the space code (``run_config_from_params``) at full fidelity with ``train_fraction = 1``. With
``with_dev`` the dev utterances join the training set: the final model sees more data, and the dev accuracy it
reports is no longer an honest estimate (the summary says so), so the last epoch's checkpoint, not the "best" one,
makes the submission.

Outputs, in ``<artifacts>/retrain/trial-<N>[-with-dev]/`` unless told otherwise: the trainer's run folder
(``config.toml``, ``last.pt``, ``best.pt``, ``metrics.json``, ``curves.html``), ``submission.csv`` for the test
split, the score files when ``ROOT/<test_split>-labels`` exists, and ``summary.json``. Re-running resumes or reuses
the finished run folder. When the winner's promoted run already trained exactly this config on the same data (the
usual case without ``--with-dev``), its checkpoints make the submission and nothing is trained again.

Example::

    result = retrain_winner(load_study_config("studies/demo.toml"), with_dev=False)
    print(result.test_accuracy, result.submission)
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from phonetune.atomic import atomic_write_json
from phonetune.data_pipeline.load import load_training_data
from phonetune.errors import ConfigError
from phonetune.model.checkpoint import read_checkpoint
from phonetune.model.inference import predict_checkpoint
from phonetune.model.run_files import LAST_CHECKPOINT, TrainResult, run_config_changes
from phonetune.model.scoring import labels_dir_of, score_when_labelled
from phonetune.model.train_config import RunConfig
from phonetune.model.trainer import Trainer
from phonetune.search import attributes as attrs
from phonetune.search.attributes import FULL_FIDELITY, SEARCH_FIDELITY
from phonetune.search.config import StudyConfig
from phonetune.search.ranking import best_trial
from phonetune.search.space import run_config_from_params
from phonetune.search.study import open_full_study, open_study, storage_for

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
SUBMISSION_FILE = "submission.csv"


@dataclass(frozen=True)
class Winner:
    search_trial: FrozenTrial  # the search trial whose parameters are retrained
    full_trial: FrozenTrial | None  # its full-data trial when the winner was picked among promoted runs
    reason: str  # how it was picked, for the summary

    @property
    def selection_accuracy(self) -> float | None:
        trial = self.full_trial or self.search_trial
        return None if trial.value is None else float(trial.value)


@dataclass(frozen=True)
class RetrainResult:
    winner: Winner
    run_config: RunConfig  # what was trained
    param_count: int
    out_dir: Path  # the run folder
    checkpoint: Path  # the checkpoint that made the submission
    submission: Path
    dev_accuracy: float  # best dev accuracy of the retrained run (optimistic with with_dev)
    test_accuracy: float | None  # None when the test split has no labels
    summary_path: Path


def pick_winner(search_study: optuna.Study, full_study: optuna.Study | None, trial_number: int | None) -> Winner:
    """The trial to retrain: search trial ``trial_number``, else the best full-data trial, else the best search one."""
    search_trials = {trial.number: trial for trial in search_study.get_trials(deepcopy=False)}
    if trial_number is not None:
        chosen = search_trials.get(trial_number)
        if chosen is None or chosen.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            usable = sorted(
                number for number, trial in search_trials.items()
                if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
            )
            found = "missing" if chosen is None else chosen.state.name
            raise ConfigError(
                f"--trial must name a COMPLETE or PRUNED trial of study {search_study.study_name!r}, but trial "
                f"{trial_number} is {found}; usable trials: {usable}"
            )
        return Winner(chosen, None, f"search trial {trial_number} (chosen with --trial)")
    if full_study is not None:
        promoted = full_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        promoted = [trial for trial in promoted if trial.user_attrs.get(attrs.SOURCE_TRIAL) in search_trials]
        best = best_trial(promoted)
        if best is not None:
            source = search_trials[best.user_attrs[attrs.SOURCE_TRIAL]]
            return Winner(source, best, f"best full-data trial {best.number} (search trial {source.number})")
    best = best_trial(search_trials.values())
    if best is None:
        raise ConfigError(
            f"retrain needs a COMPLETE trial in study {search_study.study_name!r}, but it has none; "
            "run `phonetune search` first (or pick a pruned one with --trial N)"
        )
    return Winner(best, None, f"best search trial {best.number} (nothing promoted)")


def winner_run_config(config: StudyConfig, winner: Winner) -> RunConfig:
    """The winner's RunConfig at full fidelity, on every training utterance."""
    params = winner.full_trial.params if winner.full_trial is not None else winner.search_trial.params
    run_config = run_config_from_params(config, params, FULL_FIDELITY)
    return dataclasses.replace(run_config, data=dataclasses.replace(run_config.data, train_fraction=1.0))


def promoted_run(config: StudyConfig, winner: Winner, run_config: RunConfig) -> TrainResult | None:
    """The winner's finished full-data run when it trained exactly ``run_config`` (same data, same epochs).

    Retraining it would repeat the same epochs with the same seed, so its checkpoints serve as they are. None when
    there is no such run, it stopped early, or any setting that changes the arithmetic differs.
    """
    folder = config.paths.trial_dir(winner.search_trial.number, FULL_FIDELITY)
    if winner.full_trial is None or not (folder / LAST_CHECKPOINT).is_file():
        return None
    payload = read_checkpoint(folder / LAST_CHECKPOINT)
    changed = run_config_changes(payload["run_config"], run_config.to_mapping())
    if changed or payload["epoch"] != run_config.train.epochs:
        return None
    return TrainResult.from_checkpoint(payload, folder)


def default_out_dir(config: StudyConfig, winner: Winner, with_dev: bool) -> Path:
    suffix = "-with-dev" if with_dev else ""
    return config.paths.artifacts_path / "retrain" / f"trial-{winner.search_trial.number}{suffix}"


def retrain_winner(
    config: StudyConfig,
    *,
    trial_number: int | None = None,
    with_dev: bool = False,
    out_dir: str | Path | None = None,
    progress: bool = True,
    storage: optuna.storages.BaseStorage | None = None,
) -> RetrainResult:
    """Pick the winner, train it, write the submission, score it when labels exist, and write summary.json."""

    storage = storage if storage is not None else storage_for(config, must_exist=True)
    search_study = open_study(config, SEARCH_FIDELITY, storage=storage)
    full_study = open_full_study(config, storage)
    winner = pick_winner(search_study, full_study, trial_number)
    run_config = winner_run_config(config, winner)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(config, winner, with_dev)
    logger.info("retraining %s into %s%s", winner.reason, out_dir, " with the dev split" if with_dev else "")

    result = None if with_dev else promoted_run(config, winner, run_config)
    if result is not None:
        logger.info("reusing the promoted run in %s: it trained this exact config on the same data", result.out_dir)
    else:
        data = load_training_data(run_config.data, with_dev=with_dev, progress=progress)
        trainer = Trainer(run_config, out_dir, data=data, progress=progress, param_limit=config.param_limit)
        try:
            trainer.setup()
            result = trainer.train()
        finally:
            trainer.cleanup()

    # Trained on dev, "best on dev" would pick by a score the model was fitted to; the last epoch is the honest pick.
    checkpoint = result.last_checkpoint if with_dev else result.best_checkpoint
    data = run_config.data
    submission, frames = predict_checkpoint(
        checkpoint, data.root, data.test_split, out_dir / SUBMISSION_FILE, progress=progress
    )
    test_accuracy = score_when_labelled(submission, data, out_dir / "score")
    if test_accuracy is None:
        logger.info("no labels at %s: the submission is not scored", labels_dir_of(data))

    summary = {
        "study": config.name,
        "winner": winner.reason,
        "search_trial": winner.search_trial.number,
        "full_trial": None if winner.full_trial is None else winner.full_trial.number,
        "selection_dev_accuracy": winner.selection_accuracy,
        "params": dict(winner.search_trial.params),
        "run_config": run_config.to_mapping(),
        "param_count": result.param_count,
        "param_limit": config.param_limit,
        "with_dev": with_dev,
        "reused_promoted_run": str(result.out_dir) if result.out_dir != out_dir else None,
        "epochs": len(result.history),
        "dev_accuracy": result.best_dev_acc,
        "dev_accuracy_note": "optimistic: dev was part of training" if with_dev else "held out",
        "test_split": data.test_split,
        "test_frames": frames,
        "test_accuracy": test_accuracy,
        "checkpoint": str(checkpoint.resolve()),
        "submission": str(Path(submission).resolve()),
        "run_dir": str(out_dir.resolve()),
    }
    summary_path = atomic_write_json(out_dir / SUMMARY_FILE, summary)
    return RetrainResult(
        winner=winner,
        run_config=run_config,
        param_count=result.param_count,
        out_dir=out_dir,
        checkpoint=checkpoint,
        submission=Path(submission),
        dev_accuracy=result.best_dev_acc,
        test_accuracy=test_accuracy,
        summary_path=summary_path,
    )
