"""What only the PostgreSQL backend promises: concurrent migrations, typed outages,
replays racing from several processes, one embedded hub per database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import psycopg
import pytest

from lastseen.errors import StoreError, StoreUnavailable
from lastseen.presence import DeviceState, Reason, Source, Status
from lastseen.store import Batch, DeviceQuery, DeviceRecord, EventRecord, PresenceUpdate
from lastseen.store.migrations import postgres as schema
from lastseen.store.postgres import PostgresStore, describe_dsn
from tests.store.test_contract import device, event
from tests.tcpproxy import Proxy, via

pytestmark = pytest.mark.anyio

LATEST = schema.MIGRATIONS[-1][0]
#: A typed outage must surface within this many seconds (connect timeout 1.5 s).
OUTAGE_BOUND = 2.0


async def versions(dsn: str) -> list[int]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cursor = await conn.execute("SELECT version FROM schema_version ORDER BY version")
        return [row[0] for row in await cursor.fetchall()]


@pytest.fixture
async def proxy(postgres_dsn: str) -> AsyncIterator[Proxy]:
    parts = urlsplit(postgres_dsn)
    forward = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await forward.start()
    try:
        yield forward
    finally:
        await forward.cut()


def test_migration_versions_increase_from_one() -> None:
    assert [v for v, _ in schema.MIGRATIONS] == list(range(1, len(schema.MIGRATIONS) + 1))


async def test_instances_starting_at_once_migrate_exactly_once(postgres_dsn: str) -> None:
    stores = [PostgresStore(postgres_dsn, max_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        assert await versions(postgres_dsn) == list(range(1, LATEST + 1))
        await stores[0].apply(Batch(upserts=[device("a")], events=[event(1, "a")]))
        for opened in stores:
            assert await opened.last_seq() == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_new_step_upgrades_an_existing_database(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = PostgresStore(postgres_dsn)
    await first.open()
    await first.apply(Batch(upserts=[device("a")]))
    await first.close()
    step = (LATEST + 1, "CREATE TABLE extra (x int); INSERT INTO extra VALUES (42);")
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, step])
    upgraded = PostgresStore(postgres_dsn)
    await upgraded.open()
    try:
        assert await upgraded.get_device("a") == device("a")
        assert await versions(postgres_dsn) == list(range(1, LATEST + 2))
    finally:
        await upgraded.close()


async def test_a_newer_schema_is_refused_with_both_versions(postgres_dsn: str) -> None:
    first = PostgresStore(postgres_dsn)
    await first.open()
    await first.close()
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (LATEST + 5,))
    newer = PostgresStore(postgres_dsn)
    with pytest.raises(StoreError, match=f"schema version {LATEST + 5}.* up to {LATEST}"):
        await newer.open()
    await newer.close()


async def test_a_server_that_refuses_is_unavailable_at_once(
    proxy: Proxy, postgres_dsn: str
) -> None:
    await proxy.cut()
    store = PostgresStore(via(postgres_dsn, proxy.port))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unavailable"):
        await store.open()
    assert time.monotonic() - started < OUTAGE_BOUND
    with pytest.raises(StoreError, match="not open"):
        await store.get_device("a")


async def test_a_silent_server_is_unavailable_within_the_connect_timeout(
    proxy: Proxy, postgres_dsn: str
) -> None:
    await proxy.silence()
    store = PostgresStore(via(postgres_dsn, proxy.port))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.open()
    assert time.monotonic() - started < OUTAGE_BOUND


async def test_an_outage_is_a_typed_error_and_the_store_recovers(
    proxy: Proxy, postgres_dsn: str
) -> None:
    store = PostgresStore(via(postgres_dsn, proxy.port))
    await store.open()
    try:
        await store.apply(Batch(upserts=[device("a")], events=[event(1, "a")]))
        await proxy.cut()
        for call in (store.get_device("a"), store.apply(Batch(events=[event(2, "a")]))):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as raised:
                await call
            assert time.monotonic() - started < OUTAGE_BOUND
            assert raised.value.code == "store_unavailable"
            assert raised.value.http_status == 503
        await proxy.restore()
        assert await store.get_device("a") == device("a")
        await store.apply(Batch(events=[event(2, "a")]))
        assert await store.last_seq() == 2
    finally:
        await store.close()


async def test_the_same_replays_racing_from_two_stores_land_once(postgres_dsn: str) -> None:
    stores = [PostgresStore(postgres_dsn) for _ in range(2)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await stores[0].apply(
            Batch(upserts=[DeviceRecord(f"d{i}", "default", DeviceState()) for i in range(50)])
        )
        batches = [
            Batch(
                presence=[
                    PresenceUpdate(
                        f"d{i % 50}",
                        DeviceState(Status.ONLINE, since=float(seq), last_seen=float(seq)),
                        version=seq,
                    )
                    for seq, i in zip(range(start, start + 100), range(100), strict=True)
                ],
                events=[
                    event(seq, f"d{seq % 50}", at=float(seq)) for seq in range(start, start + 100)
                ],
                idempotent=True,
            )
            for start in (1, 101, 201)
        ]
        # Every batch twice, from both stores, newest first for one of them.
        await asyncio.gather(
            *(stores[0].apply(b) for b in batches),
            *(stores[1].apply(b) for b in reversed(batches)),
        )
        assert [e.seq for e in await stores[1].events(0, 1000)] == list(range(1, 301))
        assert await stores[1].last_seq() == 300
        for record in await stores[0].load_devices():
            # d{k} was last written by the batch starting at 201.
            assert record.state.since == record.version >= 201
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_ten_thousand_transitions_commit_in_one_batch(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    await store.open()
    try:
        ids = [f"dev-{i:05d}" for i in range(10_000)]
        await store.apply(Batch(upserts=[device(i) for i in ids]))
        gone = DeviceState(
            Status.OFFLINE, since=50.0, anchor=1.0, reason=Reason.OFFLINE_TIMEOUT,
            source=Source.TIMEOUT, flaps=(49.0, 50.0),
        )  # fmt: skip
        await store.apply(
            Batch(
                presence=[PresenceUpdate(i, gone) for i in ids],
                events=[
                    EventRecord(seq, i, event(seq).transition) for seq, i in enumerate(ids, start=1)
                ],
            )
        )
        assert await store.last_seq() == 10_000
        offline = await store.list_devices(DeviceQuery(status=Status.OFFLINE, limit=20_000))
        assert [d.id for d in offline] == ids
        assert {d.state for d in offline} == {gone}
    finally:
        await store.close()


async def test_one_exclusive_store_per_database(postgres_dsn: str) -> None:
    first = PostgresStore(postgres_dsn, exclusive=True)
    await first.open()
    try:
        second = PostgresStore(postgres_dsn, exclusive=True)
        with pytest.raises(StoreError, match="in use by another lastseen serve"):
            await second.open()
        # Tools that share the database (``lastseen keys --postgres``) are not refused.
        shared = PostgresStore(postgres_dsn)
        await shared.open()
        await shared.close()
    finally:
        await first.close()
    after = PostgresStore(postgres_dsn, exclusive=True)
    await after.open()
    await after.close()


async def test_messages_never_show_the_password() -> None:
    dsn = "postgresql://lastseen:s3cret@127.0.0.1:1/fleet"
    assert describe_dsn(dsn) == "postgresql://lastseen@127.0.0.1:1/fleet"
    assert "s3cret" not in describe_dsn("host=db user=u password=s3cret dbname=x")
    store = PostgresStore(dsn, connect_timeout=0.5)
    with pytest.raises(StoreUnavailable) as raised:
        await store.open()
    assert "s3cret" not in str(raised.value)


async def test_after_a_long_outage_the_store_reconnects_at_the_first_call(
    proxy: Proxy, postgres_dsn: str
) -> None:
    store = PostgresStore(via(postgres_dsn, proxy.port))
    await store.open()
    try:
        await proxy.cut()
        # Callers keep trying for several seconds: long enough that a backing-off
        # pool (1, 2, 4 s ...) would still be asleep when the server returns.
        failures = 0
        until = time.monotonic() + 4.0
        while time.monotonic() < until:
            with pytest.raises(StoreUnavailable):
                await store.last_seq()
            failures += 1
            await asyncio.sleep(0.2)
        await proxy.restore()
        started = time.monotonic()
        assert await store.last_seq() == 0
        assert time.monotonic() - started < OUTAGE_BOUND
        assert failures >= 2
    finally:
        await store.close()


async def test_a_device_json_cannot_hold_is_refused_and_changes_nothing(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    await store.open()
    try:
        bad = DeviceRecord("a", "default", DeviceState(), attributes={"x": object()})
        with pytest.raises(StoreError, match="JSON"):
            await store.apply(Batch(upserts=[bad, device("b")], events=[event(1, "b")]))
        assert await store.load_devices() == []
        assert await store.last_seq() == 0
    finally:
        await store.close()
