"""The few private Optuna attributes phonetune reaches, kept in one place (checked against Optuna 5.0).

Why each is needed: the ask/tell loop runs its own heartbeat and stale-trial check (``Study.optimize`` would do both,
but the workers must count the trials under a lock between ask and tell), so it needs the storage object and the
trial's storage id, which the public ``Study``/``Trial`` API does not expose; Optuna's retry callback keeps the
lineage of a retried trial in the ``retry_history`` system attribute, which a live ``Trial`` does not show; and a
``Study`` wraps an RDB storage in ``_CachedStorage``, whose ``_backend`` is the storage that holds the heartbeat, and
calls some private methods of that backend, which ``storage/reconnect.py`` must wrap too to ride out a database
restart (``RDB_PRIVATE_DATABASE_METHODS``). If an Optuna upgrade renames one of these, this module is the only place to
change.
"""

from __future__ import annotations

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage object a study reads and writes through."""
    return study._storage


def trial_id(trial: optuna.Trial) -> int:
    """The storage's id of a live trial (unique across studies, unlike ``trial.number``)."""
    return trial._trial_id


def stored_trial_id(trial: FrozenTrial) -> int:
    """The storage's id of a trial read back from the storage."""
    return trial._trial_id


def frozen_trial(trial: optuna.Trial) -> FrozenTrial:
    """A live trial's current record in the storage (its state after ``tell``, its user attributes)."""
    return trial.study._storage.get_trial(trial._trial_id)


def retry_history(trial: optuna.Trial) -> list[int]:
    """Numbers of the earlier attempts of a retried trial, oldest first (empty for a fresh trial)."""
    system_attrs = trial.study._storage.get_trial_system_attrs(trial._trial_id)
    return list(system_attrs.get("retry_history", []))


def storage_backend(storage: BaseStorage) -> BaseStorage:
    """The storage under Optuna's ``_CachedStorage`` wrapper (the storage itself when it is not wrapped)."""
    return getattr(storage, "_backend", storage)


def set_trial_system_attr(trial: optuna.Trial, key: str, value: object) -> None:
    """A system attribute of a live trial: data phonetune reads back but the dashboard's trial page does not list
    (``Trial.set_system_attr`` was removed from the public API)."""
    trial.study._storage.set_trial_system_attr(trial._trial_id, key, value)


def live_trial(study: optuna.Study, trial: FrozenTrial) -> optuna.Trial:
    """A ``Trial`` handle on a stored (possibly finished) trial, for APIs that take a live one, such as
    optuna-dashboard's ``save_note`` (notes live in the study's system attributes, so a finished trial takes one)."""
    return optuna.trial.Trial(study, trial._trial_id)


def enqueued_params(trial: FrozenTrial) -> dict:
    """The parameters a trial was enqueued with (``Study.enqueue_trial``), empty for a sampled trial: Optuna keeps
    them in the ``fixed_params`` system attribute and uses them before asking the sampler."""
    return dict(trial.system_attrs.get("fixed_params", {}))


def set_frozen_trial_user_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: object) -> None:
    """A user attribute of a running trial known only as a ``FrozenTrial`` (what a sampler's hooks receive)."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


# RDBStorage methods that query the database but are private: Optuna's _CachedStorage calls them on its backend
# instead of the public ones (and fail_stale_trials calls _get_stale_trial_ids), so a wrapper of the database calls
# must wrap these as well.
RDB_PRIVATE_DATABASE_METHODS = ("_create_new_trial", "_set_trial_param", "_get_trials", "_get_best_trial_id",
                                "_get_stale_trial_ids")
