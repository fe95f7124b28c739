"""The ``Batch.seen`` contract (heartbeat write-behind), on every backend in ``conftest``.

A seen row moves only a stored device's three times; it goes first in its batch, so
any fuller write of the same device in the batch wins and a delete removes it.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from lastseen.presence import DeviceState, Reason, Source, Status
from lastseen.store import Batch, DeviceQuery, DeviceRecord, PresenceUpdate, Store
from tests.store.test_contract import device

pytestmark = pytest.mark.anyio

T = 1_700_000_000.0
NAN = float("nan")


def full(device_id: str, *, last_seen: float = T, version: int = 0) -> DeviceRecord:
    """A device with every presence field and some JSON set."""
    state = DeviceState(
        status=Status.STALE,
        since=T - 5.0,
        last_seen=last_seen,
        last_own=last_seen - 1.0,
        anchor=last_seen - 2.0,
        reason=Reason.STALE_TIMEOUT,
        source=Source.TIMEOUT,
        session=7,
        flaps=(T - 9.0, T - 5.0),
        flapping=True,
    )
    return DeviceRecord(
        id=device_id,
        profile="default",
        state=state,
        labels={"site": "x"},
        attributes={"fw": "1.2"},
        metrics={"temp": 21.5},
        created_at=T - 100.0,
        updated_at=T - 50.0,
        version=version,
    )


def times(record: DeviceRecord | None) -> tuple[float | None, float | None, float | None]:
    assert record is not None
    s = record.state
    return s.last_seen, s.last_own, s.anchor


async def test_a_seen_row_moves_only_the_three_times(store: Store) -> None:
    original = full("a", version=4)
    await store.apply(Batch(upserts=[original]))
    await store.apply(Batch(seen=[("a", T + 10.0, T + 9.0, T + 8.0)]))
    stored = await store.get_device("a")
    state = replace(original.state, last_seen=T + 10.0, last_own=T + 9.0, anchor=T + 8.0)
    assert stored == replace(original, state=state)  # labels, JSON, version untouched


async def test_none_and_nan_are_both_no_time(store: Store) -> None:
    await store.apply(Batch(upserts=[full("a"), full("b")]))
    await store.apply(Batch(seen=[("a", T + 1.0, None, NAN), ("b", T + 2.0, NAN, None)]))
    assert times(await store.get_device("a")) == (T + 1.0, None, None)
    assert times(await store.get_device("b")) == (T + 2.0, None, None)


async def test_a_seen_row_of_a_device_not_stored_or_deleted_is_a_no_op(store: Store) -> None:
    await store.apply(Batch(upserts=[full("gone"), full("kept")]))
    await store.apply(
        Batch(
            seen=[("ghost", T, T, T), ("gone", T + 1.0, T + 1.0, T + 1.0)],
            deletes=["gone"],
        )
    )
    assert [d.id for d in await store.list_devices(DeviceQuery())] == ["kept"]
    assert await store.get_device("ghost") is None
    assert await store.get_device("kept") == full("kept")


async def test_a_seen_only_batch_is_applied(store: Store) -> None:
    # Not mistaken for an empty batch.
    await store.apply(Batch(upserts=[full("a")]))
    assert Batch(seen=[("a", T + 1.0, T + 1.0, T + 1.0)])
    await store.apply(Batch(seen=[("a", T + 1.0, T + 1.0, T + 1.0)]))
    assert times(await store.get_device("a")) == (T + 1.0, T + 1.0, T + 1.0)


async def test_an_upsert_or_presence_update_in_the_same_batch_wins(store: Store) -> None:
    await store.apply(Batch(upserts=[full("a"), full("b")]))
    newer_a = full("a", last_seen=T + 5.0)
    newer_b = replace(full("b").state, status=Status.ONLINE, last_seen=T + 6.0)
    seen = T + 99.0  # later times than the fuller writes': still not applied over them
    await store.apply(
        Batch(
            upserts=[newer_a],
            presence=[PresenceUpdate("b", newer_b)],
            seen=[("a", seen, seen, seen), ("b", seen, seen, seen)],
        )
    )
    assert await store.get_device("a") == newer_a
    stored_b = await store.get_device("b")
    assert stored_b is not None
    assert stored_b.state == newer_b


async def test_a_device_created_in_the_same_batch_keeps_its_upsert(store: Store) -> None:
    created = device("new")
    await store.apply(Batch(upserts=[created], seen=[("new", T + 1.0, T + 1.0, T + 1.0)]))
    assert await store.get_device("new") == created


async def test_many_rows_in_any_order_and_the_last_of_one_id_wins(store: Store) -> None:
    records = [full(f"dev-{i:05d}") for i in range(3000)]
    await store.apply(Batch(upserts=records))
    pick = random.Random(5)
    expected = {r.id: T + pick.random() for r in records if pick.random() < 0.7}
    winners = [(i, t, t - 1.0, t - 2.0) for i, t in expected.items()]
    pick.shuffle(winners)
    # Earlier rows of some ids, in front of the rows that must win.
    earlier = [(i, T - 1.0, T - 1.0, T - 1.0) for i in list(expected)[:100]]
    await store.apply(Batch(seen=earlier + winners))
    for record in await store.load_devices():
        t = expected.get(record.id)
        want = times(full(record.id)) if t is None else (t, t - 1.0, t - 2.0)
        assert times(record) == want, record.id
        assert record.labels == {"site": "x"}


# --- idempotent batches ------------------------------------------------------------


async def test_an_idempotent_seen_row_moves_the_times_only_forwards(store: Store) -> None:
    await store.apply(Batch(upserts=[full("a", version=3)], idempotent=True))
    later = Batch(seen=[("a", T + 20.0, T + 20.0, T + 20.0)], idempotent=True)
    await store.apply(later)
    await store.apply(Batch(seen=[("a", T + 10.0, T + 10.0, T + 10.0)], idempotent=True))
    await store.apply(later)  # a replay changes nothing either
    stored = await store.get_device("a")
    assert stored is not None
    assert times(stored) == (T + 20.0, T + 20.0, T + 20.0)
    assert stored.version == 3  # a seen row carries no version and leaves it


async def test_an_idempotent_seen_row_sets_times_never_stored(store: Store) -> None:
    await store.apply(Batch(upserts=[device("a", status=Status.UNKNOWN)], idempotent=True))
    await store.apply(Batch(seen=[("a", T, T, T)], idempotent=True))
    assert times(await store.get_device("a")) == (T, T, T)


async def test_an_idempotent_fuller_write_in_the_same_batch_stands_for_it(
    store: Store,
) -> None:
    await store.apply(Batch(upserts=[full("a", version=1), full("b")], idempotent=True))
    newer = replace(full("a").state, status=Status.ONLINE, last_seen=T + 5.0)
    upserted = full("c", last_seen=T + 6.0, version=3)
    seen = T + 99.0
    batch = Batch(
        upserts=[upserted],
        presence=[PresenceUpdate("a", newer, version=2)],
        seen=[(i, seen, seen, seen) for i in ("a", "b", "c", "ghost")],
        idempotent=True,
    )
    await store.apply(batch)
    # Replayed: the fuller writes are too old to land now, and their devices' seen
    # rows still do not (or the replay would move them past the first application).
    await store.apply(batch)
    stored = await store.get_device("a")
    assert stored is not None
    assert (stored.state, stored.version) == (newer, 2)
    assert await store.get_device("c") == upserted
    assert times(await store.get_device("b")) == (seen, seen, seen)
    assert await store.get_device("ghost") is None
