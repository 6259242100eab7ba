"""Study storages: build one from a URL, serialize trial starts across workers, detect dead workers.

Three kinds of URL work:

- ``sqlite:///path.db``: Optuna's ``RDBStorage`` on a file, in WAL mode with a long busy timeout so several worker
  processes on one machine never fail on "database is locked";
- any other SQLAlchemy URL (``postgresql://user@host/db``): ``RDBStorage`` with ``pool_pre_ping`` so a connection
  the server dropped is replaced instead of failing a trial; the way to run workers on several machines;
- ``journal:///path.log``: Optuna's ``JournalStorage`` on an append-only file (for file systems without reliable
  ``fcntl`` locks, where SQLite is unsafe).

A file storage's folder must exist (a mistyped path is an error, not a new folder tree; the default
``studies/<name>.db`` folder is made by ``phonetune.search.study.storage_for``), and a database URL whose driver
module is missing names the pip package to install.

Dead workers: on RDB storages Optuna's heartbeat is on (``heartbeat_interval``/``grace_period`` from ``[study]``) and
a RUNNING trial whose heartbeat stops is failed by the next worker that starts a trial, then re-queued by
``RetryHeartbeatStaleTrialCallback`` (up to ``max_retry`` times). A journal storage has no heartbeat of its own, so
``TrialHeartbeat`` writes the time into the trial's system attribute ``phonetune:heartbeat`` instead and
``recover_stale_trials`` applies the same rule to it (hosts' clocks must roughly agree).

Counting trials against the budget and creating the next one must not interleave between workers, or two workers
could both start the last trial. ``trial_start_lock`` serializes that step: an ``fcntl`` lock beside a SQLite or
journal file, a PostgreSQL advisory lock on PostgreSQL (other databases: no lock, a rare extra trial is possible).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import fcntl
import hashlib
import logging
import sqlite3
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from phonetune.errors import StorageError
from phonetune.search.optuna_private import storage_backend, stored_trial_id, study_storage, trial_id

logger = logging.getLogger(__name__)

JOURNAL_SCHEME = "journal:///"
SQLITE_SCHEME = "sqlite:///"
# A SQLite writer waits this long for another worker's write to finish before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 120
# Seconds a PostgreSQL connection attempt may take before the storage counts as unreachable.
POSTGRES_CONNECT_TIMEOUT_S = 10
HEARTBEAT_ATTR = "phonetune:heartbeat"
# Python module a SQLAlchemy dialect imports -> the pip package that provides it.
DRIVER_PACKAGES = {
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
    "mysql": "mysql-connector-python",
    "mariadb": "mariadb",
    "psycopg2": "psycopg2-binary",
    "psycopg": "psycopg[binary]",
    "asyncpg": "asyncpg",
    "pg8000": "pg8000",
    "oracledb": "oracledb",
    "cx_Oracle": "cx_Oracle",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
}


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        import sqlalchemy

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL (journal:///), nothing to hide
        return url


def retry_callback(max_retry: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Re-queue a dead worker's trial with its parameters and attributes.

    Reported epochs are not inherited: the retry re-reports them from the checkpoint it resumes, which may hold one
    epoch more than the dead worker managed to report.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        requeue = RetryHeartbeatStaleTrialCallback(max_retry=max_retry, inherit_intermediate_values=False)

    def retry(study: optuna.Study, trial: FrozenTrial) -> None:
        # The dead attempt's last heartbeat must not pass to the retry: between the retry's pop and its own first
        # beat, another worker would see it as long silent and fail it again.
        trial = copy.deepcopy(trial)
        trial.system_attrs.pop(HEARTBEAT_ATTR, None)
        requeue(study, trial)

    return retry


def _sqlite_path(url: str) -> Path | None:
    path = url[len(SQLITE_SCHEME):] if url.startswith(SQLITE_SCHEME) else ""
    return None if not path or path == ":memory:" or path.startswith("file:") else Path(path.split("?")[0])


def _journal_path(url: str) -> Path | None:
    return Path(url[len(JOURNAL_SCHEME):]) if url.startswith(JOURNAL_SCHEME) else None


def _require_folder(path: Path, kind: str, url: str) -> None:
    """StorageError unless the folder that is to hold the storage file exists (no folder tree made from a typo)."""
    folder = path.parent
    if folder.is_dir():
        return
    found, advice = (
        ("is not a folder", "fix the path") if folder.exists()
        else ("does not exist", f"create it (mkdir -p {folder}) or fix the path")
    )
    raise StorageError(
        f"{kind} storage {url} must be a file in an existing folder, but the folder {folder} {found}; {advice}"
    )


# SQLAlchemy 2.1 made psycopg (version 3) the driver of a bare postgresql:// URL; phonetune installs psycopg2-binary,
# so a URL that names no driver gets that one. A URL that names its driver (postgresql+psycopg://) is kept as written.
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg2"}


def _with_default_driver(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    return f"{DEFAULT_DRIVERS[scheme]}{separator}{rest}" if separator and scheme in DEFAULT_DRIVERS else url


def _require_driver(url: str) -> None:
    """StorageError naming the database kind or the pip package when SQLAlchemy cannot load the URL's driver."""
    import sqlalchemy

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError as exc:
        raise StorageError(
            f"storage {url!r} must be a database URL such as postgresql://user@host/db, sqlite:///path.db or "
            f"journal:///path.log, but it cannot be parsed: {exc}"
        ) from exc
    try:
        dialect = parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError as exc:
        raise StorageError(
            f"storage {safe_url(url)} names the database kind {parsed.drivername!r}, which SQLAlchemy does not know; "
            "use postgresql://user@host/db, sqlite:///path.db or journal:///path.log"
        ) from exc
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = (exc.name or "").split(".")[0] or dialect.driver
        package = DRIVER_PACKAGES.get(module, module)
        backend = parsed.get_backend_name()
        pip = f"{sys.executable} -m pip install"
        hint = f"install it: {pip} {package}"
        if backend == "mysql" and package != "pymysql":
            hint += f" (or the pure-Python driver: {pip} pymysql, and write the URL as mysql+pymysql://...)"
        raise StorageError(
            f"storage {safe_url(url)} needs the {backend} driver {dialect.driver!r} (Python module {module!r}, "
            f"pip package {package!r}), which is not installed; {hint}"
        ) from exc


def _enable_wal(path: Path) -> None:
    """Put the SQLite file in WAL mode (persistent in the file) so readers never block the one writer."""
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Every new pooled connection: WAL (a no-op once the file is in WAL mode) and fsync only at checkpoints,
    # which WAL makes safe against corruption (a power cut may lose the last commits, never the database).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def build_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int = 3,
    must_exist: bool = False,
) -> BaseStorage:
    """Open (creating tables or the file when needed) the storage at ``url``; StorageError naming it on failure.

    ``must_exist``: a file storage (SQLite, journal) that is not there is a StorageError instead of a new empty file,
    for commands that only read a study (a mistyped study name must not leave a database behind).
    """
    file_path = _sqlite_path(url) or _journal_path(url)
    if must_exist and file_path is not None and not file_path.exists():
        _require_folder(file_path, "file", url)  # a missing folder is the likelier typo: say that first
        raise StorageError(
            f"storage {url} must hold the study, but the file {file_path} does not exist; check the study name and "
            "[study] storage, or run `phonetune search` (or `phonetune run`) first"
        )
    journal_path = _journal_path(url)
    if journal_path is not None:
        _require_folder(journal_path, "journal", url)
        try:
            return JournalStorage(JournalFileBackend(str(journal_path)))
        except OSError as exc:
            raise StorageError(
                f"journal storage {url} must be a writable file, but opening it failed: {exc}; check the path"
            ) from exc

    import sqlalchemy

    engine_kwargs: dict[str, Any]
    engine_url = _with_default_driver(url)
    sqlite_path = _sqlite_path(url)
    if url.startswith("sqlite:"):
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        if sqlite_path is not None:
            _require_folder(sqlite_path, "SQLite", url)
            try:
                _enable_wal(sqlite_path)
            except (OSError, sqlite3.Error) as exc:
                raise StorageError(
                    f"SQLite storage {url} must be a writable database file, but opening it failed: {exc}"
                ) from exc
    else:
        _require_driver(engine_url)
        # A worker holds its connection for hours; the server or a firewall may drop it in between.
        engine_kwargs = {"pool_pre_ping": True, "pool_recycle": 1800}
        if url.startswith("postgresql") and "connect_timeout" not in url:
            # libpq waits forever for a host that accepts TCP but never answers (a hung server, a black-holing
            # firewall); fail with StorageError instead. A connect_timeout in the URL's query wins.
            engine_kwargs["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        try:
            storage = RDBStorage(
                engine_url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=retry_callback(max_retry) if heartbeat_interval else None,
            )
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
            raise StorageError(
                f"storage {safe_url(url)} must be reachable, but connecting failed: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}; check the URL, that the server runs and "
                "accepts this user"
            ) from exc
    if url.startswith("sqlite:"):
        sqlalchemy.event.listen(storage.engine, "connect", _on_sqlite_connect)
    return storage


def study_names(storage: BaseStorage) -> list[str]:
    return sorted(optuna.get_all_study_names(storage))


def require_study(storage: BaseStorage, study_name: str, url: str, hint: str = "") -> None:
    """StorageError listing the stored study names when ``study_name`` is not among them."""
    existing = study_names(storage)
    if study_name not in existing:
        listed = ", ".join(existing) if existing else "none"
        raise StorageError(
            f"study {study_name!r} must exist in {safe_url(url)}, but it holds these studies: {listed}"
            + (f"; {hint}" if hint else "")
        )


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
def _advisory_lock(storage: RDBStorage, study_name: str) -> Iterator[None]:
    import sqlalchemy

    # pg_advisory_lock takes a signed 64-bit key; derive a stable one from the study name.
    key = int.from_bytes(hashlib.sha256(f"phonetune:{study_name}".encode()).digest()[:8], "big", signed=True)
    with storage.engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


@contextlib.contextmanager
def trial_start_lock(storage: BaseStorage, url: str, study_name: str) -> Iterator[None]:
    """Hold a lock shared by every worker of ``study_name`` on this storage while counting and creating a trial."""
    file_path = _sqlite_path(url) or _journal_path(url)
    if file_path is not None:
        with _file_lock(file_path.with_name(f"{file_path.name}-{study_name}.trial-lock")):
            yield
    elif url.startswith("postgresql") and isinstance(storage, RDBStorage):
        with _advisory_lock(storage, study_name):
            yield
    else:
        yield


def uses_optuna_heartbeat(storage: BaseStorage) -> bool:
    # A Study wraps its RDBStorage in Optuna's _CachedStorage, which forwards the heartbeat calls to it.
    backend = storage_backend(storage)
    return isinstance(backend, RDBStorage) and backend.get_heartbeat_interval() is not None


class TrialHeartbeat:
    """While a trial runs, tell the storage every ``interval`` seconds that its worker is alive (a thread).

    RDB storages record Optuna's heartbeat; a journal storage gets the time in the ``phonetune:heartbeat`` system
    attribute. Used as a context manager around the objective.
    """

    def __init__(self, storage: BaseStorage, trial_id: int, interval: float) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial_id}", daemon=True)

    @classmethod
    def for_trial(cls, trial: optuna.Trial, interval: float) -> "TrialHeartbeat":
        return cls(study_storage(trial.study), trial_id(trial), interval)

    def _beat_once(self) -> None:
        if uses_optuna_heartbeat(self._storage):
            self._storage.record_heartbeat(self._trial_id)  # type: ignore[attr-defined]
        else:
            self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT_ATTR, time.time())

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self._beat_once()
            except Exception as exc:  # a storage hiccup must not kill the trial; the next beat retries
                logger.warning("heartbeat of trial id %d failed: %s", self._trial_id, exc)
            self._stop.wait(self._interval)

    def __enter__(self) -> "TrialHeartbeat":
        self._beat_once()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()


def _last_sign_of_life(trial: FrozenTrial) -> float:
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    if beat is not None:
        return float(beat)
    start = trial.datetime_start or datetime.datetime.now()
    return start.timestamp()


def recover_stale_trials(
    study: optuna.Study,
    grace_period: float,
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None,
) -> list[int]:
    """Fail the RUNNING trials whose worker stopped beating, and hand each to ``on_stale`` (the retry callback).

    RDB storages use Optuna's own heartbeat check; others use ``phonetune:heartbeat``. Call it under
    ``trial_start_lock`` so two workers never fail (and re-queue) the same trial. Returns the failed trial numbers.
    """
    storage = study_storage(study)
    if uses_optuna_heartbeat(storage):
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        failed = sorted(t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number in before)
    else:
        now = time.time()
        failed = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if now - _last_sign_of_life(trial) <= grace_period:
                continue
            try:
                changed = storage.set_trial_state_values(stored_trial_id(trial), TrialState.FAIL)
            except UpdateFinishedTrialError:
                changed = False
            if changed:
                failed.append(trial.number)
                if on_stale is not None:
                    on_stale(study, copy.deepcopy(storage.get_trial(stored_trial_id(trial))))
    for number in failed:
        logger.warning("trial %d: its worker stopped sending heartbeats; marked FAIL and re-queued", number)
    return failed
