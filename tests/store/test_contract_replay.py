"""The ``Batch(idempotent=True)`` contract, on every backend in ``conftest``.

An at-least-once producer (the scale-out outbox) may deliver a batch twice, or an
older batch after a newer one: the store must end up as if each write had been
applied once, in version order, and never move a device backwards.
"""

from __future__ import annotations

import pytest

from lastseen.errors import StoreError
from lastseen.presence import DeviceState, Reason, Source, Status
from lastseen.store import Batch, DeviceQuery, DeviceRecord, PresenceUpdate, Store
from tests.store.test_contract import device, event

pytestmark = pytest.mark.anyio


def state(status: Status, at: float) -> DeviceState:
    return DeviceState(
        status=status,
        since=at,
        last_seen=at,
        last_own=at,
        anchor=at,
        reason=Reason.HEARTBEAT if status is Status.ONLINE else Reason.OFFLINE_TIMEOUT,
        source=Source.HEARTBEAT if status is Status.ONLINE else Source.TIMEOUT,
    )


def versioned(record: DeviceRecord, version: int, **labels: str) -> DeviceRecord:
    return DeviceRecord(
        id=record.id,
        profile=record.profile,
        state=record.state,
        labels=labels or dict(record.labels),
        created_at=record.created_at,
        updated_at=record.updated_at,
        version=version,
    )


async def test_the_same_batch_twice_is_applied_once(store: Store) -> None:
    batch = Batch(
        upserts=[versioned(device("a"), 1), versioned(device("b"), 2)],
        presence=[PresenceUpdate("a", state(Status.ONLINE, 10.0), version=3)],
        events=[event(1, "a"), event(2, "b"), event(3, "a", to=Status.OFFLINE)],
        idempotent=True,
    )
    await store.apply(batch)
    devices, events = await store.load_devices(), await store.events(0, 100)
    await store.apply(batch)
    assert sorted(await store.load_devices(), key=lambda d: d.id) == sorted(
        devices, key=lambda d: d.id
    )
    assert await store.events(0, 100) == events
    assert [e.seq for e in events] == [1, 2, 3]
    assert await store.last_seq() == 3


async def test_an_older_presence_update_never_moves_a_device_back(store: Store) -> None:
    await store.apply(Batch(upserts=[versioned(device("a"), 1)], idempotent=True))
    newer = PresenceUpdate("a", state(Status.OFFLINE, 20.0), version=5)
    older = PresenceUpdate("a", state(Status.ONLINE, 10.0), version=4)
    await store.apply(Batch(presence=[newer], idempotent=True))
    await store.apply(Batch(presence=[older], idempotent=True))
    stored = await store.get_device("a")
    assert stored is not None
    assert (stored.state, stored.version) == (newer.state, 5)


async def test_an_older_upsert_never_replaces_a_newer_one(store: Store) -> None:
    await store.apply(Batch(upserts=[versioned(device("a"), 7, v="new")], idempotent=True))
    await store.apply(Batch(upserts=[versioned(device("a"), 6, v="old")], idempotent=True))
    stored = await store.get_device("a")
    assert stored is not None
    assert (stored.labels, stored.version) == ({"v": "new"}, 7)
    await store.apply(Batch(upserts=[versioned(device("a"), 8, v="newest")], idempotent=True))
    stored = await store.get_device("a")
    assert stored is not None
    assert (stored.labels, stored.version) == ({"v": "newest"}, 8)


async def test_the_highest_version_in_one_batch_wins(store: Store) -> None:
    await store.apply(Batch(upserts=[versioned(device("a"), 1)], idempotent=True))
    await store.apply(
        Batch(
            upserts=[versioned(device("a"), 9, v="9"), versioned(device("a"), 3, v="3")],
            presence=[
                PresenceUpdate("a", state(Status.OFFLINE, 30.0), version=12),
                PresenceUpdate("a", state(Status.ONLINE, 20.0), version=11),
            ],
            idempotent=True,
        )
    )
    stored = await store.get_device("a")
    assert stored is not None
    assert (stored.labels, stored.state.status, stored.version) == ({"v": "9"}, Status.OFFLINE, 12)


async def test_of_equal_versions_in_one_batch_the_first_wins(store: Store) -> None:
    # Applied in turn, the second of two equal versions is not newer than the first.
    await store.apply(Batch(upserts=[versioned(device("a"), 1)], idempotent=True))
    first = PresenceUpdate("a", state(Status.OFFLINE, 30.0), version=5)
    second = PresenceUpdate("a", state(Status.ONLINE, 20.0), version=5)
    await store.apply(Batch(presence=[first, second], idempotent=True))
    stored = await store.get_device("a")
    assert stored is not None
    assert (stored.state, stored.version) == (first.state, 5)


async def test_events_may_arrive_out_of_order_and_overlapping(store: Store) -> None:
    await store.apply(Batch(events=[event(5), event(6)], idempotent=True))
    await store.apply(Batch(events=[event(2), event(3), event(5)], idempotent=True))
    await store.apply(Batch(events=[event(6), event(4)], idempotent=True))
    assert [e.seq for e in await store.events(0, 100)] == [2, 3, 4, 5, 6]
    assert await store.last_seq() == 6
    assert await store.first_seq() == 2


async def test_an_idempotent_presence_update_of_an_unknown_device_is_a_no_op(
    store: Store,
) -> None:
    await store.apply(
        Batch(presence=[PresenceUpdate("ghost", state(Status.ONLINE, 1.0), 1)], idempotent=True)
    )
    assert await store.get_device("ghost") is None
    assert await store.list_devices(DeviceQuery()) == []


async def test_a_plain_batch_applies_every_write_and_stores_its_version(store: Store) -> None:
    await store.apply(Batch(upserts=[versioned(device("a"), 9, v="high")]))
    await store.apply(Batch(upserts=[versioned(device("a"), 2, v="low")]))
    stored = await store.get_device("a")
    assert stored is not None
    assert (stored.labels, stored.version) == ({"v": "low"}, 2)
    await store.apply(Batch(presence=[PresenceUpdate("a", state(Status.STALE, 5.0), version=1)]))
    stored = await store.get_device("a")
    assert stored is not None
    assert (stored.state.status, stored.version) == (Status.STALE, 1)


async def test_a_plain_batch_still_refuses_a_replayed_seq(store: Store) -> None:
    await store.apply(Batch(events=[event(1), event(2)], idempotent=True))
    with pytest.raises(StoreError, match="seq"):
        await store.apply(Batch(events=[event(2)]))
    await store.apply(Batch(events=[event(3)]))
    assert await store.last_seq() == 3
