"""The embedded hub on a real SQLite store, driven by a manual clock."""

from __future__ import annotations

import logging

import pytest

from lastseen.clock import ManualClock
from lastseen.errors import InvalidInput, NotFound
from lastseen.hub.broadcast import RESET, TRANSITION, StreamFilter
from lastseen.hub.core import Hub
from lastseen.logs import BATCH
from lastseen.presence import Observation, Reason, Source, Status
from lastseen.store import DeviceQuery, EventRecord
from tests.hub.conftest import T0, CountingStore, HubFactory

pytestmark = pytest.mark.anyio


async def test_first_heartbeat_registers_and_commits_before_answering(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub()
    result = await hub.heartbeat("pi-1")
    assert result.state.status is Status.ONLINE
    # Committed before the call returned: the event is in the store already.
    events = await hub.store.events(0, 10)
    assert [(e.seq, e.device_id, e.transition.to_status) for e in events] == [
        (1, "pi-1", Status.ONLINE)
    ]
    stored = await hub.store.get_device("pi-1")
    assert stored is not None
    assert stored.state.status is Status.ONLINE


async def test_heartbeat_of_online_device_writes_nothing_synchronously(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    await hub.heartbeat("pi-1")
    store = hub.store
    assert isinstance(store, CountingStore)
    before = len(store.batches)
    clock.advance(2.0)
    result = await hub.heartbeat("pi-1", attributes={"fw": "1.2"})
    assert result.state.last_seen == T0 + 2.0
    assert len(store.batches) == before  # no SQL write on the hot path
    stored = await store.get_device("pi-1")
    assert stored is not None
    assert stored.state.last_seen == T0
    await hub.stop()  # flushes write-behind
    reopened = CountingStore(store.path)
    await reopened.open()
    try:
        again = await reopened.get_device("pi-1")
        assert again is not None
        assert again.state.last_seen == T0 + 2.0
        assert again.attributes == {"fw": "1.2"}
    finally:
        await reopened.close()


async def test_timeouts_are_stamped_with_their_deadline_even_when_swept_late(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    await hub.heartbeat("pi-1")
    assert hub.next_timer() == T0 + 10.0
    assert await hub.sweep(T0 + 9.999) == 0
    fired = await hub.sweep(T0 + 45.0)  # long after both deadlines
    assert fired == 2
    await hub.stop()
    events = await _events(hub)
    assert [(e.transition.to_status, e.transition.at, e.transition.reason) for e in events] == [
        (Status.ONLINE, T0, Reason.HEARTBEAT),
        (Status.STALE, T0 + 10.0, Reason.STALE_TIMEOUT),
        (Status.OFFLINE, T0 + 30.0, Reason.OFFLINE_TIMEOUT),
    ]


async def _events(hub: Hub) -> list[EventRecord]:
    """Every event in the hub's database, read through a fresh store."""
    store = CountingStore(hub.store.path)  # type: ignore[attr-defined]
    await store.open()
    try:
        events: list[EventRecord] = []
        while batch := await store.events(events[-1].seq if events else 0, 1000):
            events.extend(batch)
        return events
    finally:
        await store.close()


async def test_heartbeats_delay_the_deadline_without_touching_the_heap(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    await hub.heartbeat("pi-1")
    heap_size = len(hub._deadlines)
    for _ in range(5):
        clock.advance(5.0)
        await hub.heartbeat("pi-1")
    assert len(hub._deadlines) == heap_size
    # The old heap entry fires, finds the device not due, and re-arms at the real deadline.
    assert await hub.sweep(T0 + 10.0) == 0
    assert hub.next_timer() == T0 + 25.0 + 10.0
    assert hub.get("pi-1")[0].state.status is Status.ONLINE


async def test_restart_fires_deadlines_missed_while_down_and_keeps_seq(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    await hub.heartbeat("a")
    await hub.heartbeat("b")
    await hub.stop()
    clock.advance(100.0)  # the hub was down past both deadlines
    second = await make_hub()
    assert second.seq == 2
    # Before the sweep reaches them, readers already see what the engine says now.
    assert second.get("a")[0].state.status is Status.OFFLINE
    assert await second.sweep() == 4
    assert second.seq == 2 + 4
    await second.stop()
    events = await _events(second)
    assert [(e.seq, e.device_id, e.transition.to_status, e.transition.at) for e in events] == [
        (1, "a", Status.ONLINE, T0),
        (2, "b", Status.ONLINE, T0),
        (3, "a", Status.STALE, T0 + 10.0),
        (4, "a", Status.OFFLINE, T0 + 30.0),
        (5, "b", Status.STALE, T0 + 10.0),
        (6, "b", Status.OFFLINE, T0 + 30.0),
    ]


async def test_a_burst_of_expiries_fires_each_device_exactly_once(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub(sweep_chunk=700)
    await hub.heartbeats([(f"d{i}", None, None) for i in range(3000)])
    fired = await hub.sweep(T0 + 10.0)
    assert fired == 3000
    assert await hub.sweep(T0 + 10.0) == 0
    await hub.stop()
    events = await _events(hub)
    stale = [e for e in events if e.transition.to_status is Status.STALE]
    assert sorted(e.device_id for e in stale) == sorted(f"d{i}" for i in range(3000))
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))
    assert hub.status_counts[Status.STALE] == 3000
    assert hub.metrics.timeout_lag.count == 3000


async def test_profile_change_reschedules_an_earlier_deadline(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    await hub.heartbeat("sensor")
    await hub.put_device("sensor", profile="fast")
    assert hub.next_timer() == T0 + 1.0
    assert await hub.sweep(T0 + 2.5) == 2
    assert hub.get("sensor")[0].state.status is Status.OFFLINE


async def test_unknown_profile_is_refused_and_changes_nothing(make_hub: HubFactory) -> None:
    hub = await make_hub()
    with pytest.raises(InvalidInput) as refused:
        await hub.put_device("x", profile="nope")
    assert refused.value.code == "unknown_profile"
    assert "x" not in hub.entries


async def test_delete_keeps_history(make_hub: HubFactory) -> None:
    hub = await make_hub()
    await hub.heartbeat("gone")
    await hub.delete_device("gone")
    with pytest.raises(NotFound):
        hub.get("gone")
    with pytest.raises(NotFound):
        await hub.delete_device("gone")
    assert await hub.store.get_device("gone") is None
    assert [e.device_id for e in await hub.store.events(0, 10)] == ["gone"]
    assert hub.status_counts[Status.ONLINE] == 0


async def test_list_devices_pages_by_cursor_and_filters_by_current_status(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    await hub.heartbeats([(f"d{i:02d}", None, None) for i in range(5)])
    await hub.put_device("idle", labels={"room": "a"})
    page, cursor, seq = await hub.list_devices(DeviceQuery(limit=3))
    assert [r.id for r, _ in page] == ["d00", "d01", "d02"]
    assert cursor == "d02"
    assert seq == 5
    page, cursor, _ = await hub.list_devices(DeviceQuery(after=cursor, limit=3))
    assert [r.id for r, _ in page] == ["d03", "d04", "idle"]
    page, cursor, _ = await hub.list_devices(DeviceQuery(status=Status.UNKNOWN))
    assert [r.id for r, _ in page] == ["idle"]
    assert cursor is None
    page, _, _ = await hub.list_devices(DeviceQuery(label=("room", "a")))
    assert [r.id for r, _ in page] == ["idle"]


async def test_stream_resume_from_memory_gets_exactly_what_was_missed(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub()
    for name in ("a", "b", "c"):
        await hub.heartbeat(name)
    subscriber, pending = await hub.open_stream(StreamFilter(), after=1)
    backlog = [m async for m in pending]
    assert [(kind, seq) for kind, seq, _ in backlog] == [(TRANSITION, 2), (TRANSITION, 3)]
    await hub.heartbeat("d")
    message = await subscriber.get(timeout=1.0)
    assert message is not None
    assert message[:2] == (TRANSITION, 4)


async def test_stream_resume_after_restart_reads_the_store(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    for name in ("a", "b", "c"):
        await hub.heartbeat(name)
    await hub.stop()
    second = await make_hub()
    only_b = StreamFilter(devices=frozenset({"b", "c"}))
    _, pending = await second.open_stream(only_b, after=1)
    backlog = [m async for m in pending]
    assert [(kind, seq) for kind, seq, _ in backlog] == [(TRANSITION, 2), (TRANSITION, 3)]


async def test_stream_resume_beyond_retained_history_gets_an_explicit_reset(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub(replay_buffer=1)
    for name in ("a", "b", "c"):
        await hub.heartbeat(name)
    clock.advance(10.0)
    await hub.heartbeat("d")
    await hub.store.prune_events(T0 + 5.0)
    _, pending = await hub.open_stream(StreamFilter(), after=0)
    backlog = [m async for m in pending]
    assert [kind for kind, _, _ in backlog] == [RESET]
    assert b"history_expired" in backlog[0][2]
    _, pending = await hub.open_stream(StreamFilter(), after=99)
    future = [m async for m in pending]
    assert b"unknown_seq" in future[0][2]


async def test_a_slow_subscriber_is_reset_and_dropped(make_hub: HubFactory) -> None:
    hub = await make_hub(subscriber_queue=16)
    subscriber, _ = await hub.open_stream(StreamFilter(), after=None)
    await hub.heartbeats([(f"d{i}", None, None) for i in range(40)])
    assert subscriber.overflowed
    assert subscriber not in hub.broadcaster.subscribers
    assert hub.metrics.subscriber_resets.get() == 1
    message = await subscriber.get(timeout=1.0)
    assert message is not None
    assert message[0] == RESET
    assert await subscriber.get(timeout=1.0) is None


async def test_stale_session_disconnect_does_not_override_newer_connect(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub()
    await hub.apply("gw", Observation(Source.CONNECT, session=2), register=True)
    result = await hub.apply("gw", Observation(Source.DISCONNECT, session=1))
    assert result.state.status is Status.ONLINE
    result = await hub.apply("gw", Observation(Source.DISCONNECT, session=2))
    assert result.state.status is Status.OFFLINE


async def test_a_long_backfill_is_read_page_by_page_in_order(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    await hub.heartbeats([(f"d{i:04d}", None, None) for i in range(1200)])
    await hub.stop()
    second = await make_hub()
    subscriber, pending = await second.open_stream(StreamFilter(), after=0)
    await second.heartbeat("late")  # published while the backfill is read
    seqs = [seq async for kind, seq, _ in pending if kind == TRANSITION]
    assert seqs == list(range(1, 1201))
    live = [await subscriber.get(timeout=1.0) for _ in range(2)]
    assert [(m[0], m[1]) for m in live if m is not None and m[0] == TRANSITION] == [
        (TRANSITION, 1201)
    ]


async def test_a_swept_burst_logs_one_line_per_transition(
    make_hub: HubFactory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await make_hub()
    await hub.heartbeats([("a", None, None), ("b", None, None)])
    caplog.set_level(logging.INFO, logger="lastseen.presence")
    caplog.clear()
    assert await hub.sweep(T0 + 10.0) == 2
    await hub.committer.submit(())  # the sweep's commit is published before this one
    lines = [line for r in caplog.records for line in getattr(r, BATCH, [])]
    assert lines == [
        f"event=transition device={d} seq={seq} from=online to=stale "
        f"reason=timeout:stale_after source=timeout at=2027-01-15T08:00:10.000Z"
        for d, seq in (("a", 3), ("b", 4))
    ]
