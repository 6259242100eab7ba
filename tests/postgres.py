"""A throwaway PostgreSQL server on loopback, for tests and benchmarks that need a real multi-process database.

Debian's ``postgresql`` package ships ``initdb`` and ``pg_ctl`` under ``/usr/lib/postgresql/<version>/bin``. The
server refuses to run as root, so when we are root every server command runs as the ``postgres`` system user
(``runuser -u postgres``) in a temporary directory owned by it. The server listens on 127.0.0.1 only, on a free
port, with its Unix socket inside the temporary directory, and trusts local connections (it lives for one test
session and holds nothing worth protecting).

Used by the ``postgres_url`` pytest fixture below and by ``bench/storage.py``::

    with throwaway_postgres() as url:
        storage = optuna.storages.RDBStorage(url)
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
from shared import free_port

DATABASE_NAME = "phonetune_test"
SERVER_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """The server binaries or the unprivileged user to run them are missing on this machine."""


def find_server_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that holds both ``initdb`` and ``pg_ctl``."""
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bin_dir = Path(initdb).parent
        version = bin_dir.parent.name
        if (bin_dir / "pg_ctl").exists() and version.isdigit():
            candidates.append((int(version), bin_dir))
    if not candidates:
        raise PostgresUnavailable(
            "PostgreSQL server binaries must exist under /usr/lib/postgresql/<version>/bin, but none were found; "
            "install them with 'apt-get install -y postgresql'"
        )
    return max(candidates)[1]


def _server_command(args: list[str]) -> list[str]:
    # PostgreSQL refuses to start as root; as any other user it runs as that user.
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--", *args]
    return args


def _check_can_run() -> None:
    if os.geteuid() != 0:
        # CI runs as root; elsewhere the postgres user's data directory cannot be handed over without privileges.
        raise PostgresUnavailable("the throwaway PostgreSQL server is started as root (it drops to the postgres user)")
    try:
        import pwd

        pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise PostgresUnavailable(f"the '{SERVER_USER}' system user must exist (Debian's postgresql package creates it)") from exc
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("runuser (util-linux) must be installed to start PostgreSQL as the postgres user")


def _run(args: list[str], what: str) -> None:
    result = subprocess.run(_server_command(args), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {result.stdout}\n{result.stderr}")


def _wait_for_server(port: int, deadline_s: float = 30.0) -> None:
    import psycopg2

    stop = time.monotonic() + deadline_s
    while True:
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user=SERVER_USER, dbname="postgres", connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > stop:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def throwaway_postgres(database: str = DATABASE_NAME, max_connections: int = 100) -> Iterator[str]:
    """Start a PostgreSQL server in a temporary directory; yield a SQLAlchemy URL to a fresh database in it.

    The server is stopped (fast shutdown) and its directory removed on exit, also when the body raises.
    Raises ``PostgresUnavailable`` when this machine cannot run one.
    """
    _check_can_run()
    bin_dir = find_server_bin()
    workdir = Path(tempfile.mkdtemp(prefix="phonetune-pg-"))
    shutil.chown(workdir, user=SERVER_USER, group=SERVER_USER)
    data_dir = workdir / "db"
    port = free_port()
    started = False
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", SERVER_USER, "--no-sync"], "initdb")
        # fsync off: the server is thrown away after the session, and durability costs seconds on a shared disk.
        options = (
            f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c max_connections={max_connections}"
        )
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options, "-l", str(workdir / "log"), "-w", "start"],
            "pg_ctl start",
        )
        started = True
        _wait_for_server(port)
        import psycopg2

        admin = psycopg2.connect(host="127.0.0.1", port=port, user=SERVER_USER, dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{database}"')
        admin.close()
        yield f"postgresql+psycopg2://{SERVER_USER}@127.0.0.1:{port}/{database}"
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"], "pg_ctl stop")
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh database on a throwaway loopback PostgreSQL server, shared by the whole test session."""
    try:
        with throwaway_postgres() as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL tests need a local server: {exc}")
