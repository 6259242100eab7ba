"""Serializing trial starts across workers (``trial_start_lock``), and one budgeted job per study (``job_lock``).

Counting trials against the target and creating the next one must not interleave between workers, or two workers
could both start the last trial. ``trial_start_lock`` serializes that step: an ``fcntl`` lock beside a SQLite or
journal file, a PostgreSQL advisory lock on PostgreSQL (other databases: no lock, a rare extra trial is possible).

``job_lock`` is held by ``phonetune run`` for its whole life, and is tried, not waited for: a second job on the same
study, on this machine or (PostgreSQL) another, is refused at once. It is an ``flock`` beside a file storage, or a
PostgreSQL session advisory lock, so a dead holder (even after ``kill -9``) releases it. Taking it writes nothing to
the study: a refused job leaves the storage as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
from pathlib import Path
from typing import Iterator

from optuna.storages import BaseStorage, RDBStorage

from phonetune.errors import ConfigError, StorageError
from phonetune.search.storage.backends import POSTGRES_CONNECT_TIMEOUT_S, safe_url, storage_file, with_default_driver
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


def _lock_key(text: str) -> int:
    """A signed 64-bit advisory lock key, stable for ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def _refuse(study_name: str, holder: str, where: str) -> ConfigError:
    return ConfigError(
        f"study {study_name!r} is already being run by {holder} ({where}); two jobs on one study would search "
        "against each other and overwrite each other's state. Wait for it to finish or stop it (Ctrl-C), then run "
        "the same command again"
    )


@contextlib.contextmanager
def job_lock(url: str, study_name: str) -> Iterator[None]:
    """Hold the lock of ``study_name``'s job on the storage at ``url`` (see the module docstring)."""
    file_path = storage_file(url)
    if file_path is not None:
        path = file_path.with_name(f"{file_path.name}-{study_name}.job-lock")
        if not path.parent.is_dir():
            yield  # the storage's folder is checked (and made, for the default one) when the study opens
            return
        try:
            handle = open(path, "a+")
        except OSError as exc:
            # A read-only study folder: reprinting a finished job needs no lock (phonetune.job.run), anything else
            # this command would do writes there.
            raise StorageError(f"the job of study {study_name!r} writes beside its storage, but its lock {path} "
                               f"cannot be opened for writing ({exc.strerror}); a finished job repeated exactly is "
                               "reprinted without writing, while this command would write (continue, rebuild or "
                               "start over): run it where the study's folder is writable") from None
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                raise _refuse(study_name, handle.read().strip() or "another process", f"lock {path}") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"phonetune run, pid {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return
    if not url.startswith("postgresql"):
        yield  # other databases: no job lock
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(with_default_driver(url),
                                      connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S})
    key = _lock_key(f"phonetune-job:{study_name}")
    try:
        connection = engine.connect()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StorageError(f"storage {safe_url(url)} must be reachable, but connecting failed: {exc}") from exc
    try:
        if not connection.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
            raise _refuse(study_name, "another phonetune run", f"a PostgreSQL advisory lock on {safe_url(url)}")
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
    finally:
        connection.close()
        engine.dispose()
