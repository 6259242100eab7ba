"""Opening a study storage from its URL: the driver, SQLite's WAL mode and busy timeout, PostgreSQL's timeouts.

Three kinds of URL work:

- ``sqlite:///path.db``: Optuna's ``RDBStorage`` on a file, in WAL mode with a long busy timeout so several worker
  processes on one machine never fail on "database is locked";
- any other SQLAlchemy URL (``postgresql://user@host/db``): ``RDBStorage`` with ``pool_pre_ping`` so a connection
  the server dropped is replaced instead of failing a trial, and whose calls wait for a restarted server
  (``reconnect.py``); the way to run workers on several machines;
- ``journal:///path.log``: Optuna's ``JournalStorage`` on an append-only file (for file systems without reliable
  ``fcntl`` locks, where SQLite is unsafe).

A file storage's folder must exist (a mistyped path is an error, not a new folder tree; the default
``studies/<name>.db`` folder is made by ``phonetune.search.study.storage_for``), and a database URL whose driver
module is missing names the pip package to install. An RDB storage gets Optuna's heartbeat and the retry callback
of ``heartbeats.py`` when ``heartbeat_interval`` is given.
"""

from __future__ import annotations

import sqlite3
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from phonetune.errors import StorageError
from phonetune.search.storage.heartbeats import retry_callback
from phonetune.search.storage.reconnect import ReconnectingRDBStorage

JOURNAL_SCHEME = "journal:///"
SQLITE_SCHEME = "sqlite:///"
# A SQLite writer waits this long for another worker's write to finish before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 120
# How long a process waits before opening again a storage whose tables another process was creating at that moment.
TABLES_RACE_WAIT_S = 0.5
TABLES_RACE_ATTEMPTS = 4
WAL_SWITCH_ATTEMPTS = 40  # 10 s of 0.25 s waits
# Seconds a PostgreSQL connection attempt may take before the storage counts as unreachable.
POSTGRES_CONNECT_TIMEOUT_S = 10
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


def storage_file(url: str) -> Path | None:
    """The file a SQLite or journal URL stores the study in; None for a database server or an in-memory SQLite."""
    return _sqlite_path(url) or _journal_path(url)


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


def with_default_driver(url: str) -> str:
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


def check_storage_url(url: str) -> None:
    """StorageError for what can be told of ``url`` without opening it, so nothing is created: a file storage's
    folder must exist and the file must not be a folder; any other URL must parse and name an installed driver.
    (A server is only reached when the storage opens.)"""
    file_path = storage_file(url)
    if file_path is not None:
        kind = "journal" if _journal_path(url) is not None else "SQLite"
        _require_folder(file_path, kind, url)
        if file_path.is_dir():
            raise StorageError(f"{kind} storage {url} must be a database file, but {file_path} is a folder; "
                               "fix the path")
        return
    if not url.startswith("sqlite:"):
        _require_driver(with_default_driver(url))


def _enable_wal(path: Path) -> None:
    """Put the SQLite file in WAL mode (persistent in the file) so readers never block the one writer."""
    for attempt in range(WAL_SWITCH_ATTEMPTS):
        connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            # Switching the journal mode needs the file to itself, and SQLite reports a busy file at once rather
            # than waiting the busy timeout (another process opening the same new storage at this moment).
            if "locked" not in str(exc) or attempt == WAL_SWITCH_ATTEMPTS - 1:
                raise
        finally:
            connection.close()
        time.sleep(TABLES_RACE_WAIT_S / 2)


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
    file_path = storage_file(url)
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
    engine_url = with_default_driver(url)
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
            # A database server may restart under a long search: its calls wait for it (reconnect.py).
            storage_class = RDBStorage if url.startswith("sqlite:") else ReconnectingRDBStorage

            def connect() -> BaseStorage:
                return storage_class(
                    engine_url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=retry_callback(max_retry) if heartbeat_interval else None,
                )

            for attempt in range(TABLES_RACE_ATTEMPTS):
                try:
                    storage = connect()
                    break
                except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as exc:
                    # Another process created the tables (or wrote their version row) between this one's check
                    # and its own write: two workers, or a reader, opening a storage as it is made. They are there
                    # once that process commits.
                    text = str(exc)
                    if attempt == TABLES_RACE_ATTEMPTS - 1 or not (
                            "already exists" in text or "UNIQUE constraint failed" in text):
                        raise
                    time.sleep(TABLES_RACE_WAIT_S)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
            raise StorageError(
                f"storage {safe_url(url)} must be reachable, but connecting failed: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}; check the URL, that the server runs and "
                "accepts this user"
            ) from exc
    if url.startswith("sqlite:"):
        sqlalchemy.event.listen(storage.engine, "connect", _on_sqlite_connect)
    else:
        storage.shown_url = safe_url(url)
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
