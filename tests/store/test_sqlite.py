"""What only the SQLite backend promises: its file, pragmas, migrations and threads."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from lastseen.errors import StoreError
from lastseen.presence import DeviceState
from lastseen.store import Batch, DeviceRecord, SQLiteStore
from lastseen.store.migrations import sqlite as schema
from lastseen.store.sqlite import _statements

pytestmark = pytest.mark.anyio

LATEST = schema.MIGRATIONS[-1][0]


def record(device_id: str, **attributes: object) -> DeviceRecord:
    return DeviceRecord(id=device_id, profile="default", state=DeviceState(), attributes=attributes)


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        yield conn


def wal_of(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def file_sizes(*paths: Path) -> int:
    return sum(p.stat().st_size for p in paths)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "hub.db"


@pytest.fixture
def garbage(path: Path) -> Path:
    path.write_bytes(b"this is not an SQLite file, just some bytes" * 100)
    return path


def test_migration_versions_increase_from_one() -> None:
    versions = [version for version, _ in schema.MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))


def test_statements_split_like_sqlite_does() -> None:
    script = """
        CREATE TABLE t (a TEXT DEFAULT 'x;y');
        CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
            UPDATE t SET a = 'z;' WHERE rowid = new.rowid;
        END;
        -- a comment
        INSERT INTO t (a) VALUES ('q')
    """
    assert [s.split()[0:2] for s in _statements(script)] == [
        ["CREATE", "TABLE"],
        ["CREATE", "TRIGGER"],
        ["--", "a"],
    ]


async def test_fresh_file_gets_latest_schema_and_wal(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        with connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            assert {"devices", "events", "meta", "devices_status", "events_at"} <= tables
    finally:
        await store.close()


async def test_close_checkpoints_and_removes_the_wal(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    await store.apply(Batch(upserts=[record("a")]))
    wal = wal_of(path)
    assert wal.exists()
    assert await store.size_bytes() == file_sizes(path, wal)
    await store.close()
    # SQLite removes the WAL only when the last connection closes cleanly.
    assert not wal.exists()


async def test_new_migration_step_upgrades_an_existing_file(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(path)
    await store.open()
    await store.apply(Batch(upserts=[record("a")]))
    await store.close()

    step = (LATEST + 1, "CREATE TABLE extra (x INTEGER); INSERT INTO extra VALUES (42);")
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, step])
    upgraded = SQLiteStore(path)
    await upgraded.open()
    try:
        assert await upgraded.get_device("a") == record("a")
        with connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST + 1
            assert conn.execute("SELECT x FROM extra").fetchall() == [(42,)]
    finally:
        await upgraded.close()


async def test_failing_migration_step_rolls_back_and_keeps_the_old_version(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(path)
    await store.open()
    await store.close()

    broken = (LATEST + 1, "CREATE TABLE half (x INTEGER); INSERT INTO nowhere VALUES (1);")
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    with pytest.raises(StoreError, match="nowhere"):
        await SQLiteStore(path).open()

    with connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "half" not in names


async def test_newer_schema_is_refused_without_touching_the_file(path: Path) -> None:
    with connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(StoreError, match=rf"schema version {LATEST + 1}.*upgrade lastseen"):
        await SQLiteStore(path).open()
    with connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


async def test_not_a_database_is_a_store_error(garbage: Path) -> None:
    with pytest.raises(StoreError, match="not a database"):
        await SQLiteStore(garbage).open()


async def test_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unable to open"):
        await SQLiteStore(tmp_path / "missing" / "hub.db").open()


async def test_reads_do_not_queue_behind_a_blocked_write(path: Path) -> None:
    store = SQLiteStore(path, busy_timeout=30.0)
    await store.open()
    try:
        await store.apply(Batch(upserts=[record("a")]))
        with connect(path) as other:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            write = asyncio.create_task(store.apply(Batch(upserts=[record("b")])))
            await asyncio.sleep(0)  # a yield, not a wait: lets the write reach its thread
            async with asyncio.timeout(10):
                assert await store.get_device("a") == record("a")
                assert await store.get_device("b") is None
            assert not write.done()
            other.execute("ROLLBACK")
        async with asyncio.timeout(10):
            await write
        assert await store.get_device("b") == record("b")
    finally:
        await store.close()


async def test_lock_held_past_busy_timeout_is_a_store_error(path: Path) -> None:
    store = SQLiteStore(path, busy_timeout=0.05)
    await store.open()
    try:
        with connect(path) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked"):
                await store.apply(Batch(upserts=[record("a")]))
            other.execute("ROLLBACK")
        await store.apply(Batch(upserts=[record("a")]))
        assert await store.get_device("a") == record("a")
    finally:
        await store.close()


async def test_unencodable_attributes_are_a_store_error_and_change_nothing(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        bad = DeviceRecord(
            id="bad", profile="default", state=DeviceState(), attributes={"x": {1: object()}}
        )
        with pytest.raises(StoreError, match="JSON"):
            await store.apply(Batch(upserts=[record("ok"), bad]))
        assert await store.load_devices() == []
    finally:
        await store.close()


async def test_load_devices_leaves_the_garbage_collector_as_it_found_it(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.apply(Batch(upserts=[record("a")]))
        assert gc.isenabled()
        await store.load_devices()
        assert gc.isenabled()
        gc.disable()
        try:
            await store.load_devices()
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        await store.close()


async def test_open_twice_is_harmless(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.open()
        assert await store.last_seq() == 0
    finally:
        await store.close()
