"""Store backends for the contract suite.

Each backend is a factory bound to one empty location (a file, a database, a key
prefix). To run the contract suite on a new backend, add a class with the
``Backend`` shape and its name to ``BACKENDS``; nothing in ``test_contract.py``
changes. Backends that need a server take it from the fixtures of
``tests/services.py`` (which skip when it is absent, and fail under ``CI=true``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Protocol

import pytest

from lastseen.store import SQLiteStore, Store
from lastseen.store.postgres import PostgresStore


class Backend(Protocol):
    def make(self) -> Store:
        """A new, unopened store on this backend's location (same data every call)."""
        ...

    async def write_future_schema_version(self) -> None:
        """Mark the stored schema as newer than any this code knows."""
        ...


class SQLiteBackend:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "lastseen.db"

    def make(self) -> Store:
        return SQLiteStore(self.path, busy_timeout=1.0)

    async def write_future_schema_version(self) -> None:
        with closing(sqlite3.connect(self.path)) as conn:
            conn.execute("PRAGMA user_version = 999999")


class PostgresBackend:
    """A fresh PostgreSQL database per test (the ``postgres_dsn`` fixture)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def make(self) -> Store:
        return PostgresStore(self.dsn, max_size=4)

    async def write_future_schema_version(self) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            await conn.execute("INSERT INTO schema_version (version) VALUES (999999)")


#: name -> factory(request, tmp_path); a factory may ask ``request`` for fixtures.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Backend]] = {
    "sqlite": lambda _request, tmp_path: SQLiteBackend(tmp_path),
    "postgres": lambda request, _tmp_path: PostgresBackend(request.getfixturevalue("postgres_dsn")),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    """An open store on a fresh location, closed after the test (close is idempotent)."""
    opened = backend.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    # A store that forgets to stop a worker would keep the interpreter alive at exit.
    before = set(threading.enumerate())
    yield
    leaked = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads still running after the test: {leaked}"
