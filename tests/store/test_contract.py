"""The contract every ``Store`` keeps, run against every backend in ``conftest.BACKENDS``.

These tests speak only the ``Store`` protocol; backend details (files, pragmas,
threads) are tested beside each backend.
"""

from __future__ import annotations

import contextlib
import random

import pytest

from lastseen.errors import StoreError
from lastseen.hub.table import DeviceTable
from lastseen.presence import DeviceState, Profile, Reason, Source, Status, Transition
from lastseen.store import (
    Batch,
    DeviceQuery,
    DeviceRecord,
    EventRecord,
    PresenceColumns,
    PresenceUpdate,
    Store,
)
from lastseen.store import postgres as postgres_store
from lastseen.store import rows as store_rows
from lastseen.store.base import DeviceRow
from tests.store.conftest import Backend

pytestmark = pytest.mark.anyio


def device(
    device_id: str,
    *,
    profile: str = "default",
    status: Status = Status.ONLINE,
    labels: dict[str, str] | None = None,
    created_at: float = 1_700_000_000.0,
    updated_at: float = 1_700_000_000.0,
) -> DeviceRecord:
    return DeviceRecord(
        id=device_id,
        profile=profile,
        state=DeviceState(status=status, since=created_at),
        labels=labels or {},
        created_at=created_at,
        updated_at=updated_at,
    )


def event(
    seq: int,
    device_id: str = "d1",
    *,
    at: float = 1_700_000_000.0,
    to: Status = Status.ONLINE,
) -> EventRecord:
    return EventRecord(
        seq=seq,
        device_id=device_id,
        transition=Transition(Status.UNKNOWN, to, at, Reason.HEARTBEAT, Source.HEARTBEAT),
    )


#: A presence with every field set, none at its default.
RICH = DeviceState(
    status=Status.STALE,
    since=1_700_000_060.0,
    last_seen=1_700_000_050.0,
    last_own=1_700_000_040.0,
    anchor=1_700_000_045.0,
    reason=Reason.STALE_TIMEOUT,
    source=Source.TIMEOUT,
    session=7,
    flaps=(1_700_000_001.0, 1_700_000_060.0),
    flapping=True,
)


def by_id(records: list[DeviceRecord]) -> list[DeviceRecord]:
    return sorted(records, key=lambda r: r.id)


# --- opening, migrations, reopening ------------------------------------------------


async def test_fresh_store_is_migrated_and_empty(store: Store) -> None:
    assert await store.load_devices() == []
    assert await store.get_device("d1") is None
    assert await store.list_devices(DeviceQuery()) == []
    assert await store.events(0, 100) == []
    assert await store.last_seq() == 0
    assert await store.first_seq() == 1


async def test_reopen_keeps_devices_events_and_last_seq(backend: Backend) -> None:
    devices = [device("a", labels={"site": "x"}), device("b", status=Status.OFFLINE)]
    events = [event(1, "a"), event(2, "b", to=Status.OFFLINE), event(3, "a")]
    first = backend.make()
    await first.open()
    try:
        await first.apply(Batch(upserts=devices, events=events))
    finally:
        await first.close()

    second = backend.make()
    await second.open()
    try:
        assert by_id(await second.load_devices()) == devices
        assert await second.events(0, 10) == events
        assert await second.last_seq() == 3
        assert await second.first_seq() == 1
    finally:
        await second.close()


async def test_reopen_keeps_last_seq_after_pruning_and_deleting(backend: Backend) -> None:
    first = backend.make()
    await first.open()
    try:
        await first.apply(Batch(upserts=[device("a")], events=[event(41, "a", at=10.0)]))
        await first.apply(Batch(deletes=["a"]))
        assert await first.prune_events(before=11.0) == 1
    finally:
        await first.close()

    second = backend.make()
    await second.open()
    try:
        assert await second.last_seq() == 41
        assert await second.first_seq() == 42
        with pytest.raises(StoreError):
            await second.apply(Batch(events=[event(41, "a")]))
    finally:
        await second.close()


async def test_reopen_of_an_already_migrated_store_is_a_no_op(backend: Backend) -> None:
    for _ in range(3):
        opened = backend.make()
        await opened.open()
        await opened.close()
    again = backend.make()
    await again.open()
    try:
        assert await again.last_seq() == 0
    finally:
        await again.close()


async def test_store_written_by_a_newer_version_is_refused(backend: Backend) -> None:
    first = backend.make()
    await first.open()
    await first.close()
    await backend.write_future_schema_version()

    newer = backend.make()
    with pytest.raises(StoreError, match="newer"):
        await newer.open()
    await newer.close()  # harmless after a failed open


async def test_close_is_idempotent_and_a_closed_store_refuses_work(backend: Backend) -> None:
    opened = backend.make()
    await opened.open()
    await opened.close()
    await opened.close()
    with pytest.raises(StoreError):
        await opened.get_device("a")
    with pytest.raises(StoreError):
        await opened.apply(Batch(upserts=[device("a")]))


# --- apply -------------------------------------------------------------------------


async def test_empty_batch_is_a_no_op(store: Store) -> None:
    await store.apply(Batch())
    assert await store.last_seq() == 0
    assert await store.load_devices() == []


@pytest.mark.parametrize(
    "bad_events",
    [
        pytest.param([event(5)], id="equal-to-last-seq"),
        pytest.param([event(3)], id="below-last-seq"),
        pytest.param([event(6), event(6)], id="repeated-in-batch"),
        pytest.param([event(8), event(7)], id="decreasing-in-batch"),
    ],
)
async def test_batch_with_a_bad_seq_changes_nothing(
    store: Store, bad_events: list[EventRecord]
) -> None:
    before = [device("keep", labels={"v": "1"}), device("gone")]
    await store.apply(Batch(upserts=before, events=[event(5, "keep")]))

    bad = Batch(
        upserts=[device("keep", labels={"v": "2"}), device("new")],
        deletes=["gone"],
        events=bad_events,
    )
    with pytest.raises(StoreError, match="seq"):
        await store.apply(bad)

    assert by_id(await store.load_devices()) == by_id(before)
    assert await store.events(0, 10) == [event(5, "keep")]
    assert await store.last_seq() == 5
    # The store is still usable after the rollback.
    await store.apply(Batch(events=[event(6, "keep")]))
    assert await store.last_seq() == 6


async def test_seqs_may_skip_but_never_repeat_after_pruning(store: Store) -> None:
    await store.apply(Batch(events=[event(10, at=1.0), event(20, at=2.0)]))
    assert await store.prune_events(before=3.0) == 2
    with pytest.raises(StoreError):
        await store.apply(Batch(events=[event(15)]))
    await store.apply(Batch(events=[event(21)]))
    assert [e.seq for e in await store.events(0, 10)] == [21]


async def test_upsert_round_trips_every_field(store: Store) -> None:
    record = DeviceRecord(
        id="Gerät-温度-🛰",
        profile="battery-sensor",
        state=DeviceState(
            status=Status.STALE,
            since=1_700_000_123.456,
            last_seen=1_700_000_100.125,
            last_own=1_700_000_050.5,
            anchor=1_700_000_099.75,
            reason=Reason.STALE_TIMEOUT,
            source=Source.TIMEOUT,
            session=9_007_199_254_740_993,  # beyond float precision: must stay an int
            flaps=(1_700_000_001.1, 1_700_000_002.2, 1_700_000_003.3),
            flapping=True,
        ),
        labels={"site": "Zürich", "rack.row": "3", "emoji": "🔥", "empty": ""},
        attributes={
            "fw": {"version": "1.2.3", "channels": ["stable", "beta"], "signed": True},
            "null": None,
            "nested": {"a": [1, 2.5, {"b": [None, False]}]},
            "text": 'quote " backslash \\ newline \n',
        },
        metrics={"temp_c": 41.25, "uptime_s": 123456789, "ratio": 0.1, "neg": -3},
        created_at=1_600_000_000.001,
        updated_at=1_700_000_123.999,
    )
    await store.apply(Batch(upserts=[record]))

    assert await store.get_device(record.id) == record
    assert await store.load_devices() == [record]
    assert await store.list_devices(DeviceQuery()) == [record]
    stored = await store.get_device(record.id)
    assert stored is not None
    assert isinstance(stored.state.session, int)
    assert stored.state.status is Status.STALE


async def test_upsert_round_trips_none_fields_and_empty_maps(store: Store) -> None:
    record = DeviceRecord(id="bare", profile="default", state=DeviceState())
    await store.apply(Batch(upserts=[record]))
    assert await store.get_device("bare") == record


@pytest.mark.parametrize("status", list(Status))
async def test_every_status_round_trips(store: Store, status: Status) -> None:
    await store.apply(Batch(upserts=[device("d", status=status)]))
    stored = await store.get_device("d")
    assert stored is not None
    assert stored.state.status is status


async def test_every_reason_and_source_round_trips(store: Store) -> None:
    records = [
        DeviceRecord(
            id=f"{reason.value}/{source.value}",
            profile="default",
            state=DeviceState(status=Status.ONLINE, reason=reason, source=source),
        )
        for reason in Reason
        for source in Source
    ]
    events = [
        EventRecord(
            seq=seq,
            device_id=r.id,
            transition=Transition(
                Status.OFFLINE,
                Status.ONLINE,
                float(seq),
                r.state.reason or Reason.MANUAL,
                r.state.source or Source.MANUAL,
                flapping=seq % 2 == 0,
            ),
        )
        for seq, r in enumerate(records, start=1)
    ]
    await store.apply(Batch(upserts=records, events=events))
    assert by_id(await store.load_devices()) == by_id(records)
    assert await store.events(0, len(events) + 1) == events


async def test_update_replaces_everything_but_created_at(store: Store) -> None:
    await store.apply(Batch(upserts=[device("d", labels={"a": "1"}, created_at=100.0)]))
    updated = DeviceRecord(
        id="d",
        profile="fast",
        state=DeviceState(status=Status.OFFLINE, since=300.0, reason=Reason.DISCONNECTED),
        labels={"b": "2"},
        attributes={"x": 1},
        metrics={"y": 2.0},
        created_at=250.0,
        updated_at=300.0,
    )
    await store.apply(Batch(upserts=[updated]))

    stored = await store.get_device("d")
    assert stored is not None
    assert stored.created_at == 100.0
    assert stored == DeviceRecord(
        id="d",
        profile="fast",
        state=updated.state,
        labels={"b": "2"},
        attributes={"x": 1},
        metrics={"y": 2.0},
        created_at=100.0,
        updated_at=300.0,
    )


async def test_delete_keeps_events_and_is_idempotent(store: Store) -> None:
    await store.apply(
        Batch(upserts=[device("a"), device("b")], events=[event(1, "a"), event(2, "b")])
    )
    await store.apply(Batch(deletes=["a"]))
    await store.apply(Batch(deletes=["a", "never-existed"]))

    assert await store.get_device("a") is None
    assert [d.id for d in await store.load_devices()] == ["b"]
    assert [e.seq for e in await store.events(0, 10, device_id="a")] == [1]
    assert await store.last_seq() == 2
    assert await store.first_seq() == 1


async def test_a_batch_combines_upserts_deletes_and_events(store: Store) -> None:
    await store.apply(Batch(upserts=[device("old")]))
    await store.apply(
        Batch(upserts=[device("new")], deletes=["old"], events=[event(1, "new"), event(2, "old")])
    )
    assert [d.id for d in await store.load_devices()] == ["new"]
    assert [(e.seq, e.device_id) for e in await store.events(0, 10)] == [(1, "new"), (2, "old")]
    assert await store.last_seq() == 2


async def test_presence_updates_move_only_the_presence_columns(store: Store) -> None:
    original = device("a", labels={"site": "x"})
    await store.apply(Batch(upserts=[original]))
    state = RICH
    await store.apply(
        Batch(presence=[PresenceUpdate("a", state), PresenceUpdate("never-stored", state)])
    )
    stored = await store.get_device("a")
    assert stored is not None
    assert stored.state == state
    assert stored.labels == {"site": "x"}
    assert stored.created_at == original.created_at
    assert await store.get_device("never-stored") is None


def columns_of(updates: list[PresenceUpdate]) -> PresenceColumns:
    states = [u.state for u in updates]
    return PresenceColumns(
        ids=[u.id for u in updates],
        status=[s.status for s in states],
        since=[s.since for s in states],
        last_seen=[s.last_seen for s in states],
        last_own=[s.last_own for s in states],
        anchor=[s.anchor for s in states],
        reason=[s.reason for s in states],
        source=[s.source for s in states],
        session=[s.session for s in states],
        flaps=[s.flaps for s in states],
        flapping=[s.flapping for s in states],
    )


async def test_presence_columns_are_the_same_writes_as_presence_updates(store: Store) -> None:
    await store.apply(Batch(upserts=[device("a", labels={"site": "x"}), device("b"), device("c")]))
    rich = RICH
    bare = DeviceState(status=Status.OFFLINE, since=1_700_000_070.0, flaps=(1_700_000_070.0,))
    # "c" is written by both parts of the batch: the columns come second and win.
    updates = [PresenceUpdate("a", rich), PresenceUpdate("c", bare), PresenceUpdate("ghost", bare)]
    await store.apply(
        Batch(
            presence=[PresenceUpdate("c", rich)],
            presence_columns=columns_of(updates),
        )
    )
    stored = {r.id: r for r in await store.load_devices()}
    assert set(stored) == {"a", "b", "c"}  # "ghost" was never stored: a no-op
    assert stored["a"].state == rich
    assert stored["a"].labels == {"site": "x"}
    assert stored["c"].state == bare
    assert stored["b"].state == device("b").state


def test_presence_columns_are_refused_in_an_idempotent_batch() -> None:
    columns = columns_of([PresenceUpdate("a", DeviceState())])
    with pytest.raises(ValueError, match="idempotent"):
        Batch(presence_columns=columns, idempotent=True)


async def test_later_upsert_of_one_id_in_a_batch_wins(store: Store) -> None:
    first = device("d", labels={"v": "1"}, updated_at=1.0)
    second = device("d", labels={"v": "2"}, updated_at=2.0)
    await store.apply(Batch(upserts=[device("c"), first, device("e"), second]))
    assert await store.get_device("d") == second


async def test_large_batch(store: Store) -> None:
    records = [device(f"dev-{i:05d}", labels={"shard": str(i % 7)}) for i in range(5000)]
    random.Random(1).shuffle(records)
    events = [event(seq, r.id) for seq, r in enumerate(records, start=1)]
    await store.apply(Batch(upserts=records, events=events))
    assert by_id(await store.load_devices()) == by_id(records)
    assert await store.events(4990, 100) == events[4990:]
    assert await store.last_seq() == 5000


async def test_large_presence_batch_with_repeats_keeps_the_last_of_each_device(
    store: Store,
) -> None:
    ids = [f"dev-{i:05d}" for i in range(2500)]
    await store.apply(Batch(upserts=[device(i) for i in ids]))
    updates = [
        PresenceUpdate(i, DeviceState(status=Status.STALE, since=float(n)))
        for n, i in enumerate(ids)
    ]
    # Then a later update of every third device in the same batch, shuffled in.
    later = {i: DeviceState(status=Status.OFFLINE, since=-float(n)) for n, i in enumerate(ids[::3])}
    updates += [PresenceUpdate(i, s) for i, s in later.items()]
    random.Random(3).shuffle(updates)
    updates.sort(key=lambda u: u.state.status is Status.OFFLINE)  # each later one after
    await store.apply(Batch(presence=updates))
    stored = {r.id: r.state for r in await store.load_devices()}
    assert len(stored) == 2500
    for n, i in enumerate(ids):
        expected = later.get(i, DeviceState(status=Status.STALE, since=float(n)))
        assert stored[i] == expected, i


# --- list_devices ------------------------------------------------------------------


@pytest.fixture
async def fleet(store: Store) -> list[DeviceRecord]:
    records = [
        device("pi-01", status=Status.ONLINE, labels={"site": "berlin", "kind": "pi"}),
        device("pi-02", status=Status.OFFLINE, labels={"site": "berlin", "kind": "pi"}),
        device("pi-03", status=Status.ONLINE, labels={"site": "paris", "kind": "pi"}),
        device("sensor-1", profile="battery", status=Status.STALE, labels={"site": "berlin"}),
        device("sensor-2", profile="battery", status=Status.ONLINE, labels={"kind": "pi"}),
        device("gw.a", profile="gateway", status=Status.UNKNOWN, labels={"rack.row": "3"}),
        device("gw.b", profile="gateway", status=Status.ONLINE, labels={'say "hi"': "yes"}),
    ]
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)  # the listing must not depend on insert order
    await store.apply(Batch(upserts=shuffled))
    return records


def ids(records: list[DeviceRecord]) -> list[str]:
    return [r.id for r in records]


@pytest.mark.usefixtures("fleet")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (DeviceQuery(), ["gw.a", "gw.b", "pi-01", "pi-02", "pi-03", "sensor-1", "sensor-2"]),
        (DeviceQuery(status=Status.ONLINE), ["gw.b", "pi-01", "pi-03", "sensor-2"]),
        (DeviceQuery(status=Status.STALE), ["sensor-1"]),
        (DeviceQuery(profile="battery"), ["sensor-1", "sensor-2"]),
        (DeviceQuery(profile="nobody"), []),
        (DeviceQuery(label=("site", "berlin")), ["pi-01", "pi-02", "sensor-1"]),
        (DeviceQuery(label=("kind", "pi")), ["pi-01", "pi-02", "pi-03", "sensor-2"]),
        (DeviceQuery(label=("site", "Berlin")), []),
        (DeviceQuery(label=("berlin", "site")), []),
        (DeviceQuery(label=("rack.row", "3")), ["gw.a"]),
        (DeviceQuery(label=('say "hi"', "yes")), ["gw.b"]),
        (DeviceQuery(status=Status.ONLINE, label=("site", "berlin")), ["pi-01"]),
        (DeviceQuery(status=Status.ONLINE, profile="gateway"), ["gw.b"]),
        (DeviceQuery(after="pi-02"), ["pi-03", "sensor-1", "sensor-2"]),
        (DeviceQuery(after="pi"), ["pi-01", "pi-02", "pi-03", "sensor-1", "sensor-2"]),
        (DeviceQuery(after="zzz"), []),
        (DeviceQuery(status=Status.ONLINE, after="gw.b", limit=2), ["pi-01", "pi-03"]),
        (DeviceQuery(limit=1), ["gw.a"]),
        (DeviceQuery(limit=0), []),
    ],
)
async def test_list_devices_filters(store: Store, query: DeviceQuery, expected: list[str]) -> None:
    assert ids(await store.list_devices(query)) == expected


async def test_list_devices_returns_full_records(store: Store, fleet: list[DeviceRecord]) -> None:
    assert await store.list_devices(DeviceQuery(limit=100)) == by_id(fleet)


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 100])
@pytest.mark.parametrize("status", [None, Status.ONLINE])
async def test_list_devices_cursor_pagination_visits_each_device_once(
    store: Store, fleet: list[DeviceRecord], limit: int, status: Status | None
) -> None:
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await store.list_devices(DeviceQuery(status=status, after=after, limit=limit))
        assert len(page) <= limit
        if not page:
            break
        seen += ids(page)
        after = page[-1].id
    wanted = sorted(r.id for r in fleet if status is None or r.state.status is status)
    assert seen == wanted


# --- events ------------------------------------------------------------------------


@pytest.fixture
async def history(store: Store) -> list[EventRecord]:
    events = [
        event(3, "a", at=10.0),
        event(4, "b", at=11.0),
        event(7, "a", at=12.0, to=Status.STALE),
        event(8, "c", at=12.0),
        event(9, "b", at=13.0, to=Status.OFFLINE),
    ]
    await store.apply(Batch(events=events[:2]))
    await store.apply(Batch(events=events[2:]))
    return events


async def test_events_in_seq_order_after_and_limit(
    store: Store, history: list[EventRecord]
) -> None:
    assert await store.events(0, 100) == history
    assert await store.events(3, 100) == history[1:]
    assert await store.events(5, 100) == history[2:]
    assert await store.events(0, 2) == history[:2]
    assert await store.events(4, 2) == history[2:4]
    assert await store.events(9, 100) == []
    assert await store.events(0, 0) == []


async def test_events_of_one_device(store: Store, history: list[EventRecord]) -> None:
    assert await store.events(0, 100, device_id="a") == [history[0], history[2]]
    assert await store.events(3, 100, device_id="a") == [history[2]]
    assert await store.events(0, 1, device_id="b") == [history[1]]
    assert await store.events(0, 100, device_id="nobody") == []


async def test_last_and_first_seq(store: Store, history: list[EventRecord]) -> None:
    assert await store.last_seq() == 9
    assert await store.first_seq() == 3


async def test_prune_events_by_time(store: Store, history: list[EventRecord]) -> None:
    assert await store.prune_events(before=10.0) == 0  # strictly before
    assert await store.prune_events(before=12.0) == 2
    assert await store.events(0, 100) == history[2:]
    assert await store.first_seq() == 7
    assert await store.last_seq() == 9
    assert await store.prune_events(before=12.0) == 0


async def test_pruning_everything_keeps_last_seq(store: Store, history: list[EventRecord]) -> None:
    assert await store.prune_events(before=1e12) == len(history)
    assert await store.events(0, 100) == []
    assert await store.last_seq() == 9
    assert await store.first_seq() == 10


async def test_deleting_devices_keeps_last_seq(store: Store, history: list[EventRecord]) -> None:
    await store.apply(Batch(deletes=["a", "b", "c"]))
    assert await store.last_seq() == 9
    assert await store.first_seq() == 3


# --- size --------------------------------------------------------------------------


async def test_size_bytes_is_positive(store: Store) -> None:
    assert await store.size_bytes() > 0
    await store.apply(Batch(upserts=[device(f"d{i}") for i in range(100)]))
    assert await store.size_bytes() > 0


async def _device_rows(store: Store) -> list[list[DeviceRow]]:
    return [list(rows) async for rows in store.device_rows()]


async def test_device_rows_carry_what_load_devices_does(store: Store) -> None:
    t = 1_700_000_000.0
    records = [
        DeviceRecord(
            id="full",
            profile="battery-sensor",
            # Every presence field set, in DeviceState's field order.
            state=DeviceState(
                *(Status.STALE, t + 123.456, t + 100.125, t + 50.5),
                *(t + 99.75, Reason.STALE_TIMEOUT, Source.TIMEOUT, 2**53 + 1),
                *((t + 1.1, t + 2.2), True),
            ),
            labels={"site": "Zürich"},
            attributes={"fw": {"v": [1, None, "x"]}},
            metrics={"temp_c": 41.25},
            created_at=1_600_000_000.001,
            updated_at=t + 123.999,
        ),
        DeviceRecord(id="bare", profile="default", state=DeviceState()),
        # One flap, whose time needs all 17 digits; session 0 (falsy, not None).
        DeviceRecord(
            id="one-flap",
            profile="default",
            state=DeviceState(
                Status.ONLINE,
                t + 0.1,
                t + 0.1,
                t + 0.1,
                t + 0.1,
                Reason.HEARTBEAT,
                Source.HEARTBEAT,
                0,
                (1_700_000_000.1000001,),
                False,
            ),
            labels={"only": "labels"},
        ),
        DeviceRecord(
            id="many-flaps",
            profile="default",
            state=DeviceState(
                Status.OFFLINE,
                t,
                None,
                None,
                None,
                Reason.OFFLINE_TIMEOUT,
                Source.TIMEOUT,
                None,
                (t + 1.0, t + 2.5, t + 3.25, t + 4.0),
                True,
            ),
            metrics={"n": 0},
        ),
        DeviceRecord(id="attrs", profile="default", state=DeviceState(), attributes={"a": 1}),
    ]
    await store.apply(Batch(upserts=records))
    batches = await _device_rows(store)
    rows = [row for batch in batches for row in batch]
    assert sorted(row[0] for row in rows) == sorted(record.id for record in records)
    # Decoded the way the embedded hub loads them, they are the stored devices.
    table = DeviceTable()
    for batch in batches:
        table.load(batch, lambda name: Profile(name=name))
    for record in records:
        n = table.index[record.id]
        assert table.state(n) == record.state
        assert table.profile_of(n).name == record.profile
        assert dict(table.labels.get(n, {})) == record.labels
        assert dict(table.attributes.get(n, {})) == record.attributes
        assert dict(table.metrics.get(n, {})) == record.metrics
        assert (table.created_at[n], table.updated_at[n]) == (record.created_at, record.updated_at)
    assert await _device_rows(store) == batches


async def test_device_rows_come_in_batches_and_can_be_left_early(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_rows, "DEVICE_ROWS_BATCH", 2)
    monkeypatch.setattr(postgres_store, "DEVICE_ROWS_BATCH", 2)
    await store.apply(Batch(upserts=[device(f"d{i}") for i in range(5)]))
    batches = await _device_rows(store)
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert sorted(row[0] for batch in batches for row in batch) == [f"d{i}" for i in range(5)]
    async with contextlib.aclosing(store.device_rows()) as reading:
        async for _ in reading:
            break
    # Leaving early ends the read: the store writes and reads on as before.
    await store.apply(Batch(deletes=["d0"]))
    assert sorted(row[0] for batch in await _device_rows(store) for row in batch) == [
        f"d{i}" for i in range(1, 5)
    ]
