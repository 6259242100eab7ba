"""Study storages: open one from a URL (``backends.py``), serialize trial starts across workers (``locks.py``),
detect dead workers and re-queue their trials (``heartbeats.py``), wait for a restarted database server
(``reconnect.py``).

Example::

    storage = build_storage("sqlite:///studies/demo.db", heartbeat_interval=10, grace_period=60)
    with trial_start_lock(storage, "sqlite:///studies/demo.db", "demo"):
        ...  # count the study's trials and ask for the next one
"""

from phonetune.search.storage.backends import (
    DRIVER_PACKAGES,
    JOURNAL_SCHEME,
    POSTGRES_CONNECT_TIMEOUT_S,
    SQLITE_BUSY_TIMEOUT_S,
    SQLITE_SCHEME,
    build_storage,
    check_storage_url,
    require_study,
    safe_url,
    storage_file,
    study_names,
)
from phonetune.search.storage.heartbeats import (
    HEARTBEAT_ATTR,
    INTERRUPTED_ATTR,
    TrialHeartbeat,
    fail_orphaned_trials,
    recover_stale_trials,
    retry_callback,
    uses_optuna_heartbeat,
)
from phonetune.search.storage.locks import job_lock, trial_start_lock
from phonetune.search.storage.reconnect import RECONNECT_WINDOW_S, ReconnectingRDBStorage

__all__ = [
    "DRIVER_PACKAGES",
    "HEARTBEAT_ATTR",
    "INTERRUPTED_ATTR",
    "JOURNAL_SCHEME",
    "POSTGRES_CONNECT_TIMEOUT_S",
    "RECONNECT_WINDOW_S",
    "ReconnectingRDBStorage",
    "SQLITE_BUSY_TIMEOUT_S",
    "SQLITE_SCHEME",
    "TrialHeartbeat",
    "build_storage",
    "check_storage_url",
    "fail_orphaned_trials",
    "job_lock",
    "recover_stale_trials",
    "require_study",
    "retry_callback",
    "safe_url",
    "storage_file",
    "study_names",
    "trial_start_lock",
    "uses_optuna_heartbeat",
]
