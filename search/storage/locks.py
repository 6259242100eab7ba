"""Serializing trial starts across workers: ``trial_start_lock``.

Counting trials against the budget and creating the next one must not interleave between workers, or two workers
could both start the last trial. ``trial_start_lock`` serializes that step: an ``fcntl`` lock beside a SQLite or
journal file, a PostgreSQL advisory lock on PostgreSQL (other databases: no lock, a rare extra trial is possible).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from pathlib import Path
from typing import Iterator

from optuna.storages import BaseStorage, RDBStorage

from phonetune.search.storage.backends import safe_url, storage_file
from phonetune.search.storage.reconnect import connection_lost, retry_while_unreachable


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(storage: RDBStorage, study_name: str, url: str) -> Iterator[None]:
    import sqlalchemy

    # pg_advisory_lock takes a signed 64-bit key; derive a stable one from the study name.
    key = int.from_bytes(hashlib.sha256(f"phonetune:{study_name}".encode()).digest()[:8], "big", signed=True)

    def lock() -> sqlalchemy.Connection:
        connection = storage.engine.connect()
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        except BaseException:
            connection.close()
            raise
        return connection

    # A restarting server: wait for it (reconnect.py) rather than fail the worker.
    connection = retry_while_unreachable(lock, safe_url(url))
    try:
        yield
    finally:
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
        except Exception as exc:
            # The server ended the session (a restart), and the session's lock with it: nothing left to release.
            if not connection_lost(exc):
                raise
        finally:
            connection.close()


@contextlib.contextmanager
def trial_start_lock(storage: BaseStorage, url: str, study_name: str) -> Iterator[None]:
    """Hold a lock shared by every worker of ``study_name`` on this storage while counting and creating a trial."""
    file_path = storage_file(url)
    if file_path is not None:
        with _file_lock(file_path.with_name(f"{file_path.name}-{study_name}.trial-lock")):
            yield
    elif url.startswith("postgresql") and isinstance(storage, RDBStorage):
        with _advisory_lock(storage, study_name, url):
            yield
    else:
        yield
