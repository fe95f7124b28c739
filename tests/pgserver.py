"""A PostgreSQL cluster a test starts itself, so it may restart it (never the shared one).

``initdb`` and ``pg_ctl`` come from the newest ``/usr/lib/postgresql/<version>/bin`` (or
``PATH``). The cluster lives in a temp dir, listens on a free loopback port, trusts
local connections and runs with ``fsync=off`` (a test cluster: speed over durability
across a machine crash, which no test simulates). initdb refuses to run as root, so as
root every command runs as the ``postgres`` user on a directory that user owns.

Use the ``private_postgres`` fixture (import it into a folder's ``conftest.py``, as
``tests/scaleout/conftest.py`` does): it skips outside CI when the binaries are missing, and
fails under ``CI=true`` like the fixtures of ``tests/services.py``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lastseen.testing import free_port

_USER = "postgres"


def pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None if there is none."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


class PostgresServer:
    """One private PostgreSQL cluster: ``start``, ``stop``, ``restart``, ``dsn(db)``."""

    def __init__(self, bin_dir: Path, port: int | None = None) -> None:
        self.bin = bin_dir
        self.port = port or free_port()
        self._as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="lastseen-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if self._as_root:
            info = pwd.getpwnam(_USER)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        self.user = _USER if self._as_root else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *command: str, timeout: float = 60.0) -> None:
        argv = [str(self.bin / command[0]), *command[1:]]
        if self._as_root:
            argv = ["runuser", "-u", _USER, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{output}")

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        options = (
            f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
            f"unix_socket_directories = '{self.root}'\nfsync = off\n"
            "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(options)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart``: every connection is dropped, the server comes back."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", mode, "-w", "-t", "30",
            "restart",
        )  # fmt: skip

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """A new database on this server; its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def close(self) -> None:
        """Stop (immediately) if running, and remove the cluster's files."""
        if self.running():
            with contextlib.suppress(RuntimeError):  # already gone: nothing to stop
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _wait_ready(server: PostgresServer, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(server.dsn(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A running private PostgreSQL cluster the test may stop, restart and break."""
    bin_dir = pg_bin()
    if bin_dir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        reason = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    server = PostgresServer(bin_dir)
    try:
        server.init()
        server.start()
        _wait_ready(server)
        yield server
    finally:
        server.close()
