"""Write-behind of the embedded hub: what reaches the store, and in which form."""

from __future__ import annotations

import math

import pytest

from lastseen.clock import ManualClock
from lastseen.presence import Observation, Source, Status
from lastseen.store import Batch, SeenRow
from tests.hub.conftest import T0, CountingStore, HubFactory

pytestmark = pytest.mark.anyio


def written_since(store: CountingStore, before: int) -> tuple[list[SeenRow], set[str]]:
    """The seen rows, and the ids of every fuller write, of the batches after ``before``."""
    batches: list[Batch] = store.batches[before:]
    seen = [row for batch in batches for row in batch.seen]
    fuller = {r.id for b in batches for r in b.upserts}
    fuller.update(u.id for b in batches for u in b.presence)
    return seen, fuller


async def test_seen_only_devices_are_flushed_as_seen_rows_in_id_order(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    store = hub.store
    assert isinstance(store, CountingStore)
    for device_id in ("c", "a", "b", "gone", "attrs"):
        await hub.heartbeat(device_id)
    before = len(store.batches)
    clock.advance(2.0)
    await hub.heartbeat("c")
    await hub.heartbeats([("b", None, None), ("a", None, None), ("gone", None, None)])
    await hub.heartbeat("attrs", attributes={"fw": "2"})  # a full row, not a seen one
    await hub.delete_device("gone")
    await hub.stop()  # flushes write-behind
    seen, fuller = written_since(store, before)
    now = T0 + 2.0
    assert seen == [("a", now, now, now), ("b", now, now, now), ("c", now, now, now)]
    assert fuller == {"attrs"}  # no presence update for a seen-only device
    reopened = CountingStore(store.path)
    await reopened.open()
    try:
        for device_id in "abc":
            stored = await reopened.get_device(device_id)
            assert stored is not None
            assert (stored.state.status, stored.state.last_seen) == (Status.ONLINE, now)
        assert await reopened.get_device("gone") is None
    finally:
        await reopened.close()


async def test_a_probe_that_changes_no_status_writes_its_times_and_keeps_a_missing_one(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    # A manual "online" sets no last_own; the probe then moves last_seen and anchor
    # only. The columns hold the missing last_own as NaN, and it must stay None.
    hub = await make_hub()
    store = hub.store
    assert isinstance(store, CountingStore)
    await hub.apply("p", Observation(Source.MANUAL, status=Status.ONLINE), register=True)
    before = len(store.batches)
    clock.advance(3.0)
    await hub.apply("p", Observation(Source.PROBE, ok=True))
    await hub.stop()
    seen, fuller = written_since(store, before)
    missing = [(i, s, o is None or math.isnan(o), a) for i, s, o, a in seen]
    assert missing == [("p", T0 + 3.0, True, T0 + 3.0)]
    assert fuller == set()
    reopened = CountingStore(store.path)
    await reopened.open()
    try:
        stored = await reopened.get_device("p")
        assert stored is not None
        assert (stored.state.last_seen, stored.state.last_own) == (T0 + 3.0, None)
        assert stored.state.anchor == T0 + 3.0
    finally:
        await reopened.close()


async def test_a_device_with_a_fuller_write_in_the_flush_gets_no_seen_row(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    store = hub.store
    assert isinstance(store, CountingStore)
    await hub.heartbeat("d")
    clock.advance(1.0)
    await hub.heartbeat("d")  # seen
    clock.advance(1.0)
    hub.committer.mark_dirty("d")  # and then dirty: the full row carries the times
    before = len(store.batches)
    await hub.stop()
    seen, fuller = written_since(store, before)
    assert seen == []
    assert fuller == {"d"}
    reopened = CountingStore(store.path)
    await reopened.open()
    try:
        again = await reopened.get_device("d")
        assert again is not None
        assert again.state.last_seen == T0 + 1.0
    finally:
        await reopened.close()
