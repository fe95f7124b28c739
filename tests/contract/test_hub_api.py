"""The ``HubAPI`` contract: what the web layer may rely on from any hub.

One suite, run on the embedded hub (SQLite and PostgreSQL stores) and on the shared
``RedisHub`` (Redis and PostgreSQL). The store contract (tests/store) covers durable
history; this suite covers the hub seam above it, where scale-out mode keeps its hot
state in Redis. Time moves only with the manual clock (see conftest.py).
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from lastseen.errors import InvalidInput, NotFound
from lastseen.hub.broadcast import DEVICE, RESET, TRANSITION, Message, StreamFilter, Subscriber
from lastseen.hub.feed import FeedEvent
from lastseen.presence import Observation, Reason, Source, Status
from lastseen.store import DeviceQuery
from tests.contract.conftest import T0, Fleet

pytestmark = pytest.mark.anyio


async def _status(fleet: Fleet, device_id: str) -> Status:
    record, _ = await fleet.hub.read_device(device_id)
    return record.state.status


async def _next(subscriber: Subscriber, kind: str = TRANSITION) -> dict[str, object]:
    """The next message of ``kind`` (messages of other kinds are skipped)."""
    for _ in range(20):
        message: Message | None = await subscriber.get(timeout=5.0)
        assert message is not None, f"no {kind} message within 5 s"
        if message[0] == kind:
            body: dict[str, object] = orjson.loads(message[2])
            return body
    raise AssertionError(f"no {kind} message among 20")


# --------------------------------------------------------------------- the rules


async def test_a_first_heartbeat_registers_the_device_online(fleet: Fleet) -> None:
    hub = fleet.hub
    result = await hub.heartbeat("pi-1", attributes={"fw": "1.4"}, metrics={"temp": 41.5})
    assert (result.device_id, result.state.status, result.profile.name) == (
        "pi-1",
        Status.ONLINE,
        "default",
    )
    record, profile = await hub.read_device("pi-1")
    assert record.state.status is Status.ONLINE
    assert record.state.reason is Reason.HEARTBEAT
    assert record.state.source is Source.HEARTBEAT
    assert record.state.since == record.state.last_seen == T0
    assert record.attributes == {"fw": "1.4"}
    assert record.metrics == {"temp": 41.5}
    assert profile.name == "default"
    assert await hub.knows("pi-1")
    assert not await hub.knows("pi-2")
    assert await hub.device_count() == 1
    assert await hub.current_seq() == 1
    found = await hub.profile_of("pi-1")
    assert found is not None
    assert found.name == "default"
    assert await hub.profile_of("pi-2") is None
    assert await hub.ready() is None


async def test_timeouts_fire_at_their_deadlines_and_a_heartbeat_brings_it_back(
    fleet: Fleet,
) -> None:
    hub, clock = fleet.hub, fleet.clock
    await hub.heartbeat("pi-1")
    clock.advance(9.9)
    assert await fleet.fire() == 0
    clock.advance(0.2)
    assert await fleet.fire() == 1
    record, _ = await hub.read_device("pi-1")
    assert (record.state.status, record.state.reason) == (Status.STALE, Reason.STALE_TIMEOUT)
    assert record.state.since == T0 + 10.0  # stamped with the deadline, not the sweep
    clock.advance(25.0)
    assert await fleet.fire() == 1
    record, _ = await hub.read_device("pi-1")
    assert (record.state.status, record.state.reason) == (Status.OFFLINE, Reason.OFFLINE_TIMEOUT)
    assert record.state.since == T0 + 30.0
    clock.advance(1.0)
    result = await hub.heartbeat("pi-1")
    assert result.state.status is Status.ONLINE
    assert result.state.since == clock.now()
    assert await hub.current_seq() == 4


async def test_a_read_past_a_deadline_not_yet_swept_shows_the_judged_status(
    fleet: Fleet,
) -> None:
    await fleet.hub.heartbeat("pi-1")
    fleet.clock.advance(10.5)  # no sweep: reads judge the state at now
    assert await _status(fleet, "pi-1") is Status.STALE
    _, snapshot = await fleet.hub.read_snapshot(StreamFilter())
    assert [d["status"] for d in snapshot] == ["stale"]
    _, stale = await fleet.hub.read_snapshot(StreamFilter(statuses=frozenset({Status.STALE})))
    assert [d["id"] for d in stale] == ["pi-1"]
    page, _, _ = await fleet.hub.list_devices(DeviceQuery())
    assert [r.state.status for r, _ in page] == [Status.STALE]


async def test_a_status_filter_sees_a_deadline_not_yet_swept(fleet: Fleet) -> None:
    await fleet.hub.heartbeat("pi-1")
    fleet.clock.advance(10.5)
    page, _, _ = await fleet.hub.list_devices(DeviceQuery(status=Status.STALE))
    assert [r.id for r, _ in page] == ["pi-1"]


async def test_a_heartbeat_of_an_online_device_is_not_a_transition(fleet: Fleet) -> None:
    await fleet.hub.heartbeat("pi-1")
    fleet.clock.advance(5.0)
    result = await fleet.hub.heartbeat("pi-1")
    assert result.state.status is Status.ONLINE
    assert result.state.since == T0
    assert result.state.last_seen == T0 + 5.0
    assert await fleet.hub.current_seq() == 1
    fleet.clock.advance(9.0)  # the deadline moved with the heartbeat
    assert await fleet.fire() == 0
    assert await _status(fleet, "pi-1") is Status.ONLINE


async def test_a_disconnect_of_an_older_session_never_overrides_a_newer_connect(
    fleet: Fleet,
) -> None:
    hub = fleet.hub
    await hub.apply("gw", Observation(Source.CONNECT, session=2), register=True)
    late = await hub.apply("gw", Observation(Source.DISCONNECT, session=1))
    assert late.state.status is Status.ONLINE
    gone = await hub.apply("gw", Observation(Source.DISCONNECT, session=2))
    assert (gone.state.status, gone.state.reason) == (Status.OFFLINE, Reason.DISCONNECTED)
    assert await hub.current_seq() == 2


async def test_the_devices_own_word_beats_a_failed_probe(fleet: Fleet) -> None:
    hub, clock = fleet.hub, fleet.clock
    await hub.heartbeat("pi-1")
    clock.advance(1.0)
    probed = await hub.apply("pi-1", Observation(Source.PROBE, ok=False))
    assert probed.state.status is Status.ONLINE  # it spoke a second ago
    clock.advance(10.0)  # silent past stale_after (the deadline not yet swept)
    probed = await hub.apply("pi-1", Observation(Source.PROBE, ok=False))
    assert probed.state.status is Status.OFFLINE
    record, _ = await hub.read_device("pi-1")
    assert record.state.reason is Reason.PROBE_FAILED
    manual = await hub.apply("pi-1", Observation(Source.MANUAL, status=Status.ONLINE))
    assert (manual.state.status, manual.state.reason) == (Status.ONLINE, Reason.MANUAL)


async def test_attributes_merge_and_metrics_are_replaced(fleet: Fleet) -> None:
    hub = fleet.hub
    await hub.heartbeat("pi-1", attributes={"fw": "1"}, metrics={"temp": 40})
    await hub.heartbeat("pi-1", attributes={"ip": "10.0.0.2"}, metrics={"load": 0.5})
    record, _ = await hub.read_device("pi-1")
    assert record.attributes == {"fw": "1", "ip": "10.0.0.2"}
    assert record.metrics == {"load": 0.5}


# --------------------------------------------------------------------- bad input


async def test_refused_input_changes_nothing(fleet: Fleet) -> None:
    hub = fleet.hub
    with pytest.raises(NotFound):
        await hub.heartbeat("ghost", register=False)
    with pytest.raises(NotFound):
        await hub.apply("ghost", Observation(Source.DISCONNECT))
    with pytest.raises(ValueError, match="manual observation"):
        await hub.apply("ghost", Observation(Source.MANUAL, status=Status.UNKNOWN), register=True)
    assert not await hub.knows("ghost")
    with pytest.raises(InvalidInput) as unknown_profile:
        await hub.put_device("gw", profile="nope")
    assert unknown_profile.value.code == "unknown_profile"
    assert not await hub.knows("gw")
    await hub.heartbeat("full", attributes={f"k{i}": i for i in range(256)})
    before, _ = await hub.read_device("full")
    seq = await hub.current_seq()
    with pytest.raises(InvalidInput) as refused:
        await hub.heartbeat("full", attributes={"one-more": 1})
    assert refused.value.code == "too_many_attributes"
    after, _ = await hub.read_device("full")
    assert after == before
    assert (await hub.device_count(), await hub.current_seq()) == (1, seq)


async def test_a_batch_applies_each_item_and_returns_refusals_in_place(fleet: Fleet) -> None:
    hub = fleet.hub
    await hub.heartbeat("full", attributes={f"k{i}": i for i in range(256)})
    results = await hub.heartbeats(
        [("full", {"x": 1}, None), ("fine", {"x": 1}, None), ("bare", None, None)]
    )
    assert isinstance(results[0], InvalidInput)
    assert results[0].code == "too_many_attributes"
    assert [getattr(r, "device_id", None) for r in results[1:]] == ["fine", "bare"]
    assert await _status(fleet, "fine") is Status.ONLINE
    record, _ = await hub.read_device("full")
    assert "x" not in record.attributes
    assert await hub.device_count() == 3


async def test_a_batch_answered_with_statuses_is_the_same_batch(fleet: Fleet) -> None:
    hub = fleet.hub
    await hub.heartbeat("full", attributes={f"k{i}": i for i in range(256)})
    await hub.heartbeat("back")
    await hub.apply("back", Observation(Source.DISCONNECT))
    await hub.heartbeat("beating")
    statuses = await hub.heartbeat_statuses(
        [
            ("full", {"x": 1}, None),
            ("beating", None, None),
            ("back", None, None),
            ("new", None, None),
        ]
    )
    assert isinstance(statuses[0], InvalidInput)
    assert statuses[0].code == "too_many_attributes"
    # The hot path (an online device), a device coming back, a first heartbeat.
    assert statuses[1:] == [Status.ONLINE, Status.ONLINE, Status.ONLINE]
    for device_id in ("beating", "back", "new"):
        record, _ = await hub.read_device(device_id)
        assert (record.state.status, record.state.last_seen) == (Status.ONLINE, T0)
    fleet.clock.advance(10.5)  # "beating" is stale now, its deadline not yet swept
    assert await hub.heartbeat_statuses([("beating", None, None)]) == [Status.ONLINE]


# --------------------------------------------------------------------- devices


async def test_devices_are_registered_updated_and_deleted(fleet: Fleet) -> None:
    hub = fleet.hub
    record, created = await hub.put_device("gw-1", profile="fast", labels={"site": "north"})
    assert created
    assert (record.id, record.profile, dict(record.labels)) == ("gw-1", "fast", {"site": "north"})
    assert record.state.status is Status.UNKNOWN
    assert await hub.device_count() == 1
    record, created = await hub.put_device("gw-1", labels={"site": "south"})
    assert not created
    assert (record.profile, dict(record.labels)) == ("fast", {"site": "south"})
    await hub.heartbeat("gw-1")
    fleet.clock.advance(1.5)
    assert await fleet.fire() == 1  # the fast profile's deadline
    assert await _status(fleet, "gw-1") is Status.STALE
    await hub.delete_device("gw-1")
    assert not await hub.knows("gw-1")
    assert await hub.device_count() == 0
    with pytest.raises(NotFound):
        await hub.read_device("gw-1")
    with pytest.raises(NotFound):
        await hub.delete_device("gw-1")
    fleet.clock.advance(10.0)
    assert await fleet.fire() == 0  # a deleted device's deadline is gone too


async def test_a_new_profile_applies_a_deadline_now_due(fleet: Fleet) -> None:
    hub = fleet.hub
    await hub.heartbeat("pi-1")
    fleet.clock.advance(1.5)  # online under the default profile, stale under "fast"
    record, _ = await hub.put_device("pi-1", profile="fast")
    assert record.state.status is Status.STALE
    assert record.state.since == T0 + 1.0
    assert await hub.current_seq() == 2


async def test_listing_pages_by_id_and_filters(fleet: Fleet) -> None:
    hub = fleet.hub
    await hub.put_device("c", labels={"site": "north"})
    await hub.heartbeat("a")
    await hub.put_device("b", profile="fast", labels={"site": "south"})
    await hub.heartbeat("b")
    page, cursor, seq = await hub.list_devices(DeviceQuery(limit=2))
    assert [r.id for r, _ in page] == ["a", "b"]
    assert cursor == "b"
    assert seq == 2
    page, cursor, _ = await hub.list_devices(DeviceQuery(after="b", limit=2))
    assert [r.id for r, _ in page] == ["c"]
    assert cursor is None
    online, _, _ = await hub.list_devices(DeviceQuery(status=Status.ONLINE))
    assert [r.id for r, _ in online] == ["a", "b"]
    unknown, _, _ = await hub.list_devices(DeviceQuery(status=Status.UNKNOWN))
    assert [r.id for r, _ in unknown] == ["c"]
    fast, _, _ = await hub.list_devices(DeviceQuery(profile="fast"))
    assert [(r.id, p.name) for r, p in fast] == [("b", "fast")]
    south, _, _ = await hub.list_devices(DeviceQuery(label=("site", "south")))
    assert [r.id for r, _ in south] == ["b"]


async def test_a_snapshot_holds_every_matching_device_and_its_seq(fleet: Fleet) -> None:
    hub = fleet.hub
    await hub.put_device("gw", labels={"site": "north"})
    await hub.heartbeat("pi-1")
    await hub.heartbeat("pi-2")
    seq, devices = await hub.read_snapshot(StreamFilter())
    assert seq == 2
    assert sorted(d["id"] for d in devices) == ["gw", "pi-1", "pi-2"]
    _, unknown = await hub.read_snapshot(StreamFilter(statuses=frozenset({Status.UNKNOWN})))
    assert [d["id"] for d in unknown] == ["gw"]
    _, north = await hub.read_snapshot(StreamFilter(labels=(("site", "north"),)))
    assert [(d["id"], d["status"]) for d in north] == [("gw", "unknown")]
    _, one = await hub.read_snapshot(StreamFilter(devices=frozenset({"pi-2"})))
    assert [d["id"] for d in one] == ["pi-2"]


async def test_statuses_hold_the_devices_asked_for_as_their_transitions_left_them(
    fleet: Fleet,
) -> None:
    hub = fleet.hub
    await hub.put_device("gw", labels={"site": "north"})
    await hub.heartbeat("pi-1")
    await hub.put_device("pi-2", profile="fast")
    await hub.heartbeat("pi-2")
    fleet.clock.advance(1.0)  # pi-2's stale_after
    assert await fleet.fire() == 1
    seq, found = await hub.read_statuses({Status.UNKNOWN, Status.STALE})
    assert seq == await hub.current_seq() == 3
    assert sorted((i, dict(labels), p, s, since) for i, labels, p, s, since in found) == [
        ("gw", {"site": "north"}, "default", Status.UNKNOWN, T0),
        ("pi-2", {}, "fast", Status.STALE, T0 + 1.0),
    ]
    _, asked = await hub.read_statuses((), ids=["pi-1", "nobody"])
    assert [(i, s, since) for i, _, _, s, since in asked] == [("pi-1", Status.ONLINE, T0)]
    _, both = await hub.read_statuses({Status.STALE}, ids=["pi-2", "pi-1"])
    assert sorted(i for i, *_ in both) == ["pi-1", "pi-2"]  # each device once
    assert await hub.read_statuses(()) == (3, [])
    await hub.delete_device("gw")
    assert [i for i, *_ in (await hub.read_statuses({Status.UNKNOWN}))[1]] == []


async def test_statuses_are_not_judged_and_the_sweep_comes_after_their_seq(
    fleet: Fleet,
) -> None:
    hub = fleet.hub
    await hub.heartbeat("pi-1")
    fleet.clock.advance(10.5)  # past stale_after; no sweep yet
    seq, online = await hub.read_statuses({Status.ONLINE, Status.STALE})
    assert (seq, [(i, s) for i, _, _, s, _ in online]) == (1, [("pi-1", Status.ONLINE)])
    assert await fleet.fire() == 1
    feed = hub.transitions(seq)
    try:
        async with asyncio.timeout(10):
            batch = await anext(feed)
        events = [(e.seq, e.from_status, e.to_status) for e in batch if isinstance(e, FeedEvent)]
        assert events == [(2, Status.ONLINE, Status.STALE)]  # exactly what the answer lacks
    finally:
        await feed.aclose()


# --------------------------------------------------------------------- streams


async def test_a_live_subscriber_gets_transitions_in_seq_order(fleet: Fleet) -> None:
    hub = fleet.hub
    subscriber, backlog = await hub.open_stream(StreamFilter(), None)
    assert [m async for m in backlog] == []
    await hub.heartbeat("pi-1")
    fleet.clock.advance(10.0)
    assert await fleet.fire() == 1
    first = await _next(subscriber)
    second = await _next(subscriber)
    assert [(e["seq"], e["device_id"], e["from"], e["to"]) for e in (first, second)] == [
        (1, "pi-1", "unknown", "online"),
        (2, "pi-1", "online", "stale"),
    ]
    assert second["reason"] == "timeout:stale_after"


async def test_a_live_subscriber_is_told_of_device_changes(fleet: Fleet) -> None:
    subscriber, _ = await fleet.hub.open_stream(StreamFilter(), None)
    await fleet.hub.put_device("gw", labels={"site": "east"})
    await fleet.hub.delete_device("gw")
    created = await _next(subscriber, DEVICE)
    deleted = await _next(subscriber, DEVICE)
    assert [(m["action"], m["device_id"]) for m in (created, deleted)] == [
        ("created", "gw"),
        ("deleted", "gw"),
    ]


async def test_resuming_by_seq_gets_exactly_what_was_missed(fleet: Fleet) -> None:
    hub = fleet.hub
    for i in range(5):
        await hub.heartbeat(f"r{i}")
    await fleet.settled()
    _, backlog = await hub.open_stream(StreamFilter(), 2)
    assert [m[1] async for m in backlog] == [3, 4, 5]
    _, filtered = await hub.open_stream(StreamFilter(devices=frozenset({"r4"})), 0)
    assert [(m[0], m[1]) async for m in filtered] == [(TRANSITION, 5)]
    subscriber, nothing = await hub.open_stream(StreamFilter(), 5)
    assert [m async for m in nothing] == []
    await hub.heartbeat("r5")
    live = await _next(subscriber)
    assert live["seq"] == 6  # no gap, no repeat between backfill and live


async def test_resuming_from_a_seq_never_assigned_is_a_reset(fleet: Fleet) -> None:
    await fleet.hub.heartbeat("pi-1")
    await fleet.settled()
    _, ahead = await fleet.hub.open_stream(StreamFilter(), 99)
    messages = [m async for m in ahead]
    assert [m[0] for m in messages] == [RESET]
    body = orjson.loads(messages[0][2])
    assert (body["reason"], body["seq"]) == ("unknown_seq", 1)
