"""Riding out a database restart: a storage call that fails because the server went away waits for it and retries.

A search on PostgreSQL runs for hours while the server may be restarted (an upgrade, a configuration reload, a
failover). Without this, every process that touches the storage in those seconds dies with Optuna's
``StorageInternalError``: ``phonetune search`` while following its workers, each worker at its next epoch report or
trial start, and their running trials stay RUNNING. ``ReconnectingRDBStorage`` retries a call whose connection was
lost (SQLAlchemy's ``OperationalError``: refused, terminated by the server, shutting down, starting up) once a
second for up to ``RECONNECT_WINDOW_S``; ``pool_pre_ping`` replaces the dead pooled connections. Then it gives up
with a StorageError naming the URL. Only database servers get this: a SQLite ``OperationalError`` is a locked or
full file, which waiting does not fix, and a full disk on the server is reported as one at once.

A call that failed after the server had committed it but before its answer arrived is repeated; Optuna's writes are
upserts except ``create_new_trial``, for which that window is a round trip.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable, TypeVar

from optuna.storages import RDBStorage

from phonetune.errors import StorageError, as_disk_full
from phonetune.search.optuna_private import RDB_PRIVATE_DATABASE_METHODS

logger = logging.getLogger(__name__)

# How long a storage call waits for a database server that stopped answering before it gives up.
RECONNECT_WINDOW_S = 120.0
RECONNECT_POLL_S = 1.0

Result = TypeVar("Result")


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it was raised from or while handling, is the database connection failing
    (SQLAlchemy's ``OperationalError``, or a DBAPI error that invalidated its connection), and not a full disk.

    The implicit context of a SQLAlchemy error counts too: a session whose connection died mid-transaction fails its
    next statement with ``PendingRollbackError`` ("Can't reconnect until invalid transaction is rolled back"), raised
    while handling the ``OperationalError`` and not from it. Optuna rolls the session back on its way out, so the
    retry gets through. Any other error raised while handling a lost connection (a bug in an ``except`` block, say)
    is that error: it is raised at once, not retried for the whole window.
    """
    import sqlalchemy

    if isinstance(exc, StorageError) or as_disk_full(exc) is not None:
        return False
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.OperationalError):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        context = current.__context__ if isinstance(current, sqlalchemy.exc.SQLAlchemyError) else None
        current = current.__cause__ or context
    return False


def retry_while_unreachable(call: Callable[[], Result], url: str) -> Result:
    """``call()``, repeated once a second while it fails with a lost connection, for up to ``RECONNECT_WINDOW_S``."""
    deadline = None
    while True:
        try:
            result = call()
        except Exception as exc:
            if not connection_lost(exc):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + RECONNECT_WINDOW_S
                logger.warning("storage %s stopped answering (%s); waiting up to %.0f s for it", url,
                               _first_line(exc), RECONNECT_WINDOW_S)
            if now >= deadline:
                raise StorageError(
                    f"storage {url} must be reachable, but it stopped answering for {RECONNECT_WINDOW_S:.0f} s "
                    f"({_first_line(exc)}); check that the database server runs, then run the same command again "
                    "(running trials resume from their checkpoints)"
                ) from exc
            time.sleep(RECONNECT_POLL_S)
            continue
        if deadline is not None:
            logger.warning("storage %s answers again", url)
        return result


def _first_line(exc: BaseException) -> str:
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root).strip().splitlines()
    return f"{type(root).__name__}: {text[0] if text else ''}"


# What Optuna's RDBStorage does on the database: its public storage API, and the private methods Optuna calls on it.
RETRIED_METHODS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "set_trial_param", "get_trial_param", "set_trial_state_values",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "get_best_trial", "get_trial_user_attrs",
    "get_trial_system_attrs", "record_heartbeat", *RDB_PRIVATE_DATABASE_METHODS,
)


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: "ReconnectingRDBStorage", *args: Any, **kwargs: Any) -> Any:
        return retry_while_unreachable(lambda: method(self, *args, **kwargs), self.shown_url)

    return call


class ReconnectingRDBStorage(RDBStorage):
    """Optuna's RDBStorage whose database calls wait for a restarted server (see the module docstring)."""

    shown_url = "the database"  # set by build_storage: the URL without its password, for messages


for _name in RETRIED_METHODS:
    setattr(ReconnectingRDBStorage, _name, _retried(getattr(RDBStorage, _name)))
