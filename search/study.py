"""Open a study of one fidelity with the sampler, pruner and storage its ``StudyConfig`` names.

``open_study(config)`` is what every command uses: ``search`` and ``worker`` for the search trials,
``promote``/``export``/``report``/``retrain`` for both fidelities. The search study is created once by
``phonetune search`` (or ``phonetune worker --create``) before any worker starts; everything else requires the study
to exist and names the stored studies when it does not.

Example::

    config = load_study_config("studies/demo.toml")
    study = open_study(config)                      # the search trials (StorageError if not created yet)
    full = open_study(config, "full", create=True)  # the promoted full-data runs, created on first use
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning

from phonetune.errors import ConfigError, StorageError
from phonetune.model.params import DEFAULT_PARAM_LIMIT
from phonetune.search import attributes as attrs
from phonetune.search.attributes import FIDELITY, FULL_FIDELITY, SEARCH_FIDELITY, SETTINGS_ATTR, WARM_START
from phonetune.search.config import StudyConfig
from phonetune.search.space import warm_start_params
from phonetune.search.prior_sampler import PriorSampler
from phonetune.search.storage import build_storage, require_study, study_names

logger = logging.getLogger(__name__)

METRIC_NAME = "dev accuracy"


def create_sampler(config: StudyConfig, worker_index: int = 0, trials_before: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded per worker and per resumption.

    Worker ``i`` adds ``i`` to the seed so parallel workers draw different points; ``trials_before`` (the study's
    trial count when the worker started) moves the seed again so a resumed search does not replay the random
    startup draws of the run before it. The same study history and worker index always give the same seed.
    """
    settings = config.sampler
    seed = settings.seed + worker_index + 10_007 * trials_before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if settings.kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if settings.kind == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=settings.n_startup_trials)
        if settings.kind == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=settings.n_startup_trials)
        tpe = optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=settings.n_startup_trials,
            multivariate=settings.multivariate,
            group=settings.group and settings.multivariate,
            constant_liar=settings.constant_liar,
        )
        if settings.kind == "prior":
            return PriorSampler(config, tpe, seed=seed, prior_weight=settings.prior_weight,
                                target_params=settings.target_params)
        return tpe


class SparingWarmStarts(optuna.pruners.BasePruner):
    """``base``, except that a ``[[warm_start]]`` trial is never pruned: a known-good configuration reaches the end of its
    trial and is compared there, at the fidelity every complete trial had, not after its first minutes."""

    def __init__(self, base: optuna.pruners.BasePruner) -> None:
        self.base = base

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return WARM_START not in trial.user_attrs and self.base.prune(study, trial)


def create_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """The configured pruner; its resource unit is one epoch (or one evaluation of a time-boxed trial)."""
    pruner = _base_pruner(config)
    return pruner if config.pruner.prune_warm_starts else SparingWarmStarts(pruner)


def _base_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    settings = config.pruner
    if settings.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.n_startup_trials,
            n_warmup_steps=settings.n_warmup_steps,
            interval_steps=settings.interval_steps,
        )
    if settings.kind == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings.min_resource,
            reduction_factor=settings.reduction_factor,
            min_early_stopping_rate=settings.min_early_stopping_rate,
        )
    if settings.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=settings.min_resource,
            max_resource=config.fidelity.trial_epochs,
            reduction_factor=settings.reduction_factor,
        )
    return optuna.pruners.NopPruner()


def storage_for(config: StudyConfig, *, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """The study's storage, with heartbeats and retries set from ``[study]``.

    The default storage, ``sqlite:///studies/<name>.db`` under the working folder, is phonetune's own choice, so its
    folder is made here when missing; a storage URL the user wrote must name an existing folder (``build_storage``).
    ``must_exist`` (commands that read a study) refuses a storage file that is not there rather than create it.
    """
    if not config.study.storage and not must_exist:
        folder = Path(config.paths.storage_url[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"the default storage {config.paths.storage_url} needs the folder {folder}, which cannot be created "
                f"({exc}); run from a writable folder or set [study] storage"
            ) from exc
    return build_storage(
        config.paths.storage_url,
        heartbeat_interval=config.study.heartbeat_interval,
        grace_period=config.study.grace_period,
        max_retry=config.study.max_retry,
        must_exist=must_exist,
    )


def open_study(
    config: StudyConfig,
    fidelity: str = SEARCH_FIDELITY,
    *,
    create: bool = False,
    worker_index: int = 0,
    storage: optuna.storages.BaseStorage | None = None,
) -> optuna.Study:
    """Load (or with ``create=True`` create once, idempotently) the study of ``fidelity`` ("search" or "full").

    Raises StorageError naming the URL when the storage cannot be reached, and listing the stored study names when
    ``create`` is false and the study does not exist.
    """
    study_name = config.study_name(fidelity)
    storage = storage if storage is not None else storage_for(config, must_exist=not create)
    sampler = create_sampler(config, worker_index)
    pruner = create_pruner(config)
    if create:
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction="maximize",
            load_if_exists=True,
        )
        if not study.user_attrs.get(FIDELITY):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)  # stable since 3.2; still flagged in 5.0
                study.set_metric_names([METRIC_NAME])  # the dashboard's axis and column say what the value is
            study.set_user_attr(FIDELITY, fidelity)
            for key, value in study_sizes(config).items():
                study.set_user_attr(key, value)
            fraction = config.fidelity.train_fraction if fidelity == SEARCH_FIDELITY else \
                config.fidelity.full_train_fraction
            study.set_user_attr(attrs.TRAINING_DATA_ATTR, {"normalization": config.data.normalization,
                                                           "train_fraction": fraction})
            study.set_user_attr("config_source", config.source)
            if fidelity == SEARCH_FIDELITY:
                study.set_user_attr(SETTINGS_ATTR, search_settings(config))
        elif fidelity == SEARCH_FIDELITY:
            check_same_settings(study, config)
        return study
    hint = "run `phonetune search --config ...` first" if fidelity == SEARCH_FIDELITY else "run `phonetune promote` first"
    require_study(storage, study_name, config.paths.storage_url, hint)
    try:
        return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError as exc:  # deleted between the check and the load
        raise StorageError(f"study {study_name!r} disappeared from {config.paths.storage_url} while opening it") from exc


def study_sizes(config: StudyConfig) -> dict[str, int]:
    """The sizes a study's models answer to, as its user attributes (the dashboard lists them): the HW1P2 limit,
    the study's size cap and, under ``phonetune run``, the planned size of the final run."""
    sizes = {attrs.HW1P2_LIMIT_ATTR: DEFAULT_PARAM_LIMIT, attrs.SIZE_CAP_ATTR: config.param_limit}
    if config.sampler.kind == "prior" and config.sampler.target_params:
        sizes[attrs.PLANNED_SIZE_ATTR] = config.sampler.target_params
    return sizes


def check_study_folders(config: StudyConfig) -> None:
    """StorageError, before the first trial, when the study's artifacts folder (run folders, checkpoints, sheet,
    report) cannot be created or written: found by the trials instead, every trial would fail the same way."""
    folder = config.paths.artifacts_path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise StorageError(
            f"the study's artifacts folder {folder} must be writable (trial run folders and checkpoints go there), "
            f"but {exc.strerror or exc}; set [study] artifacts_dir (or --set study.artifacts_dir=...) to a "
            "writable folder, or fix its permissions, then run the same command again"
        ) from exc


def search_settings(config: StudyConfig) -> dict[str, Any]:
    """What makes two search trials comparable: the fidelity they train at, the data, the parameter limit and the
    space they are drawn from. Recorded when the study is created, as the JSON the storage gives back."""
    data = config.data
    settings = {
        "fidelity.train_fraction": config.fidelity.train_fraction,
        "fidelity.trial_epochs": config.fidelity.trial_epochs,
        "fidelity.subsample_seed": config.fidelity.subsample_seed,
        "data.root": str(Path(data.root).resolve()),
        "data.train_split": data.train_split,
        "data.dev_split": data.dev_split,
        "data.normalization": data.normalization,
        "study.param_limit": config.param_limit,
        **{f"space.{name}": spec for name, spec in sorted(config.space.items())},
    }
    if config.timing.enabled:
        # Time-boxed trials compare only at the same box, evaluations and speed line.
        settings.update({f"timing.{key}": value for key, value in dataclasses.asdict(config.timing).items()
                         if key != "final_seconds"})
    return json.loads(json.dumps(settings, default=_as_json))


def _as_json(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else str(value)


def check_same_settings(study: optuna.Study, config: StudyConfig) -> None:
    """ConfigError naming each setting that differs from what ``study`` was created with (studies from before this
    record pass), so that a rerun with other ``--set`` overrides cannot mix incomparable trials into one study."""
    recorded = study.user_attrs.get(SETTINGS_ATTR)
    if not isinstance(recorded, dict):
        return
    now = search_settings(config)
    changed = [key for key in sorted(set(recorded) | set(now)) if recorded.get(key) != now.get(key)]
    if changed:
        details = "; ".join(f"{key}: {recorded.get(key)!r} -> {now.get(key)!r}" for key in changed)
        raise ConfigError(
            f"study {study.study_name!r} in {config.paths.storage_url} was created with other settings than "
            f"{config.describe()} gives, so its trials would not compare with new ones: {details}. Run with the "
            f"study's own settings to continue it, or name a new study (--set study.name=<new name>)"
        )


def open_full_study(config: StudyConfig, storage: optuna.storages.BaseStorage) -> optuna.Study | None:
    """The linked full-data study when ``phonetune promote`` has made it, else None."""
    if config.study_name(FULL_FIDELITY) not in study_names(storage):
        return None
    return open_study(config, FULL_FIDELITY, storage=storage)


def open_studies(config: StudyConfig) -> tuple[optuna.Study, optuna.Study | None]:
    """The study's search trials and, when ``phonetune promote`` has run, its linked full-data study: what the
    read-only views (sheet, report) show. Raises StorageError (listing the stored studies) when the search study
    does not exist."""
    storage = storage_for(config, must_exist=True)
    return open_study(config, SEARCH_FIDELITY, storage=storage), open_full_study(config, storage)


def enqueue_warm_starts(study: optuna.Study, config: StudyConfig) -> list[str]:
    """Queue each ``[[warm_start]]`` configuration once, before any sampled trial; returns the names queued now.

    A warm start already in the study (any state, found by its ``warm_start`` user attribute) is not queued again, so
    re-running a search or ``phonetune run`` never repeats one.
    """
    present = {trial.user_attrs.get(WARM_START) for trial in study.get_trials(deepcopy=False)}
    queued = []
    for warm_start in config.warm_start:
        if warm_start.name in present:
            continue
        study.enqueue_trial(warm_start_params(config, warm_start), user_attrs={WARM_START: warm_start.name})
        queued.append(warm_start.name)
    if queued:
        logger.info("queued warm-start trials %s of %s", queued, config.source)
    return queued
