"""A throwaway PostgreSQL server on loopback, for tests and benchmarks that need a real multi-process database.

Debian's ``postgresql`` package ships ``initdb`` and ``pg_ctl`` under ``/usr/lib/postgresql/<version>/bin``. The
server refuses to run as root, so when we are root every server command runs as the ``postgres`` system user
(``runuser -u postgres``) in a temporary directory owned by it. The server listens on 127.0.0.1 only, on a free
port, with its Unix socket inside the temporary directory, and trusts local connections (it lives for one test
session and holds nothing worth protecting).

One server serves the whole test session (the ``postgres_server`` fixture, registered in ``tests/conftest.py``);
each test that wants a clean slate makes its own database in it (``server.create_database(name)``), and a test may
stop and start the server (``server.stop()``, ``server.start()``) to play a database restart. ``bench/storage.py``
uses the context manager::

    with throwaway_postgres() as url:
        storage = optuna.storages.RDBStorage(url)
"""

from __future__ import annotations

import contextlib
import glob
import itertools
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
# A port picked free can be taken by another process before the server binds it; then another port is tried.
PORT_ATTEMPTS = 5
_DATABASE_NUMBERS = itertools.count()


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


def _run(args: list[str], what: str) -> subprocess.CompletedProcess:
    result = subprocess.run(_server_command(args), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {result.returncode}): {result.stdout}\n{result.stderr}")
    return result


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


class PostgresServer:
    """An initialized data directory in a temporary folder and the server on it, which can be stopped and started
    again on the same port (a database restart, as an operator or a crash-restart would do it)."""

    def __init__(self, bin_dir: Path, workdir: Path, max_connections: int = 100) -> None:
        self.bin_dir = bin_dir
        self.workdir = workdir
        self.data_dir = workdir / "db"
        self.log = workdir / "log"
        self.max_connections = max_connections
        self.port: int | None = None
        self.running = False

    def _pg_ctl(self, *args: str) -> list[str]:
        return [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]

    def _start_on(self, port: int) -> subprocess.CompletedProcess:
        # fsync off: the server is thrown away after the session, and durability costs seconds on a shared disk.
        options = (
            f"-p {port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c max_connections={self.max_connections}"
        )
        return subprocess.run(_server_command(self._pg_ctl("-o", options, "-l", str(self.log), "-w", "start")),
                              capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        """Start the server: on its earlier port after a stop, else on a free one (another if that one is taken)."""
        ports = [self.port] * PORT_ATTEMPTS if self.port is not None else [free_port() for _ in range(PORT_ATTEMPTS)]
        for attempt, port in enumerate(ports):
            log_size = self.log.stat().st_size if self.log.exists() else 0
            started = self._start_on(port)
            if started.returncode == 0:
                self.port, self.running = port, True
                _wait_for_server(port)
                return
            log = self.log.read_text(errors="replace")[log_size:] if self.log.exists() else ""
            if "Address already in use" not in log or attempt == len(ports) - 1:
                raise RuntimeError(f"pg_ctl start on port {port} failed (exit {started.returncode}): "
                                   f"{started.stdout}\n{started.stderr}\n{log}")
            time.sleep(0.5)  # another process holds the port (or the stopped server's socket lingers)

    def stop(self) -> None:
        """Fast shutdown: open transactions are rolled back and every client is disconnected at once."""
        _run(self._pg_ctl("-m", "fast", "-w", "stop"), "pg_ctl stop")
        self.running = False

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, database: str) -> str:
        """A fresh empty database in the server; returns its SQLAlchemy URL."""
        import psycopg2

        admin = psycopg2.connect(host="127.0.0.1", port=self.port, user=SERVER_USER, dbname="postgres")
        admin.autocommit = True
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{database}"')
        finally:
            admin.close()
        return self.url(database)


@contextlib.contextmanager
def running_postgres(max_connections: int = 100) -> Iterator[PostgresServer]:
    """Initialize a data directory in a temporary folder and start a server on it; stopped (fast shutdown) and
    removed on exit, also when the body raises. Raises ``PostgresUnavailable`` when this machine cannot run one."""
    _check_can_run()
    bin_dir = find_server_bin()
    workdir = Path(tempfile.mkdtemp(prefix="phonetune-pg-"))
    shutil.chown(workdir, user=SERVER_USER, group=SERVER_USER)
    server = PostgresServer(bin_dir, workdir, max_connections)
    try:
        _run([str(bin_dir / "initdb"), "-D", str(server.data_dir), "-A", "trust", "-U", SERVER_USER, "--no-sync"],
             "initdb")
        server.start()
        yield server
    finally:
        if server.running:
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def throwaway_postgres(database: str = DATABASE_NAME, max_connections: int = 100) -> Iterator[str]:
    """Start a PostgreSQL server in a temporary directory; yield a SQLAlchemy URL to a fresh database in it."""
    with running_postgres(max_connections) as server:
        yield server.create_database(database)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway loopback PostgreSQL server for the whole test session (started at most once)."""
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL tests need a local server: {exc}")


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request) -> str:
    """URL of a fresh database of its own for one test, on the session's server (started again if a test left it
    stopped)."""
    if not postgres_server.running:
        postgres_server.start()
    test = "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:50]
    return postgres_server.create_database(f"t{next(_DATABASE_NUMBERS)}_{test}")
