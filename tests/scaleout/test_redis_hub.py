"""RedisHub instances in one process, sharing the real Redis: consistency, exactly-once
timeouts, fan-out, resume, the outbox. Deadlines run on Redis's real clock, so the
profile here is fast (stale after 0.3 s) and waits are bounded polls, never sleeps
that make a test pass."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson
import pytest

from lastseen.errors import InvalidInput, NotFound, Unavailable
from lastseen.hub.broadcast import DEVICE, RESET, SEEN, TRANSITION, StreamFilter, Subscriber
from lastseen.presence import Observation, Reason, Source, Status
from lastseen.scaleout.hub import WARM_CONNECTIONS
from lastseen.store import Batch, DeviceQuery
from lastseen.timefmt import rfc3339
from tests.scaleout.conftest import FlakyStore, RedisHubFactory

pytestmark = pytest.mark.anyio


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_heartbeat_on_one_instance_is_seen_at_once_on_another(
    make_redis_hub: RedisHubFactory,
) -> None:
    a = await make_redis_hub(background=False)
    b = await make_redis_hub(background=False)
    result = await a.heartbeat("pi-1", attributes={"fw": "1.4"}, metrics={"temp": 41.5})
    assert result.state.status is Status.ONLINE
    record, profile = await b.read_device("pi-1")
    assert record.state.status is Status.ONLINE
    assert record.attributes == {"fw": "1.4"}
    assert record.metrics == {"temp": 41.5}
    assert profile.name == "default"
    assert await b.knows("pi-1")
    assert not await b.knows("pi-2")
    assert await b.device_count() == 1
    assert await b.current_seq() == 1


async def test_timeouts_fire_exactly_once_with_two_instances_sweeping(
    make_redis_hub: RedisHubFactory,
) -> None:
    a = await make_redis_hub()
    b = await make_redis_hub()
    ids = [f"d{i}" for i in range(200)]
    await a.heartbeats([(i, None, None) for i in ids])
    await asyncio.gather(*(a.put_device(i, profile="default") for i in ids[:1]))

    async def all_offline() -> bool:  # the one device message is in the stream too
        return (await a.redis.xlen(a.keys.stream)) >= 3 * len(ids) + 1

    await until(all_offline)
    entries = [e for e in await a.redis.xrange(a.keys.stream, "-", "+") if e[0].endswith("-0")]
    seqs = [int(i.split("-")[0]) for i, _ in entries]
    assert seqs == list(range(1, 3 * len(ids) + 1))
    pairs = [(f["d"], f["t"]) for _, f in entries]
    assert len(set(pairs)) == len(pairs)  # nobody transitioned twice
    assert a.metrics.swept.get() + b.metrics.swept.get() == 2 * len(ids)
    # Stamped with the deadline, not the sweep time.
    record, _ = await b.read_device("d7")
    assert record.state.status is Status.OFFLINE
    assert record.state.reason is Reason.OFFLINE_TIMEOUT

    async def drained() -> bool:
        return await a.store.last_seq() == 3 * len(ids)

    await until(drained)
    stored = await a.store.events(0, 10_000)
    assert [e.seq for e in stored] == seqs


async def test_a_subscriber_on_one_instance_gets_transitions_made_on_another(
    make_redis_hub: RedisHubFactory,
) -> None:
    a = await make_redis_hub()
    c = await make_redis_hub()
    subscriber, backlog = await c.open_stream(StreamFilter(), None)
    assert [m async for m in backlog] == []
    await a.heartbeat("pi-9")
    got = []
    while len(got) < 3:  # online, then stale and offline fired by either sweeper
        message = await subscriber.get(timeout=5.0)
        assert message is not None
        got.append(message)
    assert [m[0] for m in got] == [TRANSITION] * 3
    assert [m[1] for m in got] == [1, 2, 3]
    assert b'"to":"offline"' in got[2][2]


async def test_resume_gets_exactly_what_was_missed_from_the_stream(
    make_redis_hub: RedisHubFactory,
) -> None:
    a = await make_redis_hub(background=False)
    for i in range(5):
        await a.heartbeat(f"r{i}")
    b = await make_redis_hub(background=False)  # an empty ring: resume from Redis
    b.published_seq = 5
    _, backlog = await b.open_stream(StreamFilter(), 2)
    assert [m[1] async for m in backlog] == [3, 4, 5]
    _, ahead = await b.open_stream(StreamFilter(), 99)
    assert [m[0] async for m in ahead] == [RESET]
    only = StreamFilter(devices=frozenset({"r4"}))
    _, filtered = await b.open_stream(only, 0)
    assert [m[1] async for m in filtered] == [5]


async def test_devices_are_registered_listed_and_deleted_everywhere(
    make_redis_hub: RedisHubFactory,
) -> None:
    a = await make_redis_hub(background=False)
    b = await make_redis_hub(background=False)
    record, created = await a.put_device("gw-1", profile="slow", labels={"site": "north"})
    assert created
    assert record.profile == "slow"
    assert record.state.status is Status.UNKNOWN
    assert (await a.store.get_device("gw-1")) is not None  # admin writes go to the store
    _, again = await b.put_device("gw-1", labels={"site": "south"})
    assert not again
    await b.heartbeat("gw-2")
    page, cursor, seq = await b.list_devices(DeviceQuery(limit=1))
    assert [r.id for r, _ in page] == ["gw-1"]
    assert cursor == "gw-1"
    assert seq == 1
    page, cursor, _ = await b.list_devices(DeviceQuery(after="gw-1"))
    assert [r.id for r, _ in page] == ["gw-2"]
    assert cursor is None
    online, _, _ = await a.list_devices(DeviceQuery(status=Status.ONLINE))
    assert [r.id for r, _ in online] == ["gw-2"]
    labelled, _, _ = await a.list_devices(DeviceQuery(label=("site", "south")))
    assert [(r.id, r.profile) for r, _ in labelled] == [("gw-1", "slow")]
    _, snapshot = await a.read_snapshot(StreamFilter(statuses=frozenset({Status.UNKNOWN})))
    assert [d["id"] for d in snapshot] == ["gw-1"]
    await a.delete_device("gw-1")
    with pytest.raises(NotFound):
        await b.read_device("gw-1")
    with pytest.raises(NotFound):
        await b.delete_device("gw-1")
    assert (await a.store.get_device("gw-1")) is None
    with pytest.raises(InvalidInput):
        await a.put_device("gw-3", profile="nope")


async def test_unknown_devices_and_oversized_attributes_change_nothing(
    make_redis_hub: RedisHubFactory,
) -> None:
    a = await make_redis_hub(background=False)
    with pytest.raises(NotFound):
        await a.heartbeat("ghost", register=False)
    with pytest.raises(NotFound):
        await a.apply("ghost", Observation(Source.DISCONNECT))
    assert not await a.knows("ghost")
    await a.heartbeat("full", attributes={f"k{i}": i for i in range(256)})
    with pytest.raises(InvalidInput) as refused:
        await a.heartbeat("full", attributes={"one-more": 1})
    assert refused.value.code == "too_many_attributes"
    results = await a.heartbeats([("full", {"x": 1}, None), ("fine", {"x": 1}, None)])
    assert isinstance(results[0], InvalidInput)
    assert not isinstance(results[1], InvalidInput)


async def test_redis_down_answers_unavailable_quickly(
    make_redis_hub: RedisHubFactory, redis_url: str
) -> None:
    a = await make_redis_hub(background=False)
    down = await make_redis_hub(url="redis://127.0.0.1:1/0", background=False, start=False)
    started = time.monotonic()
    with pytest.raises(Unavailable) as refused:
        await down.heartbeat("pi-1")
    assert refused.value.code == "unavailable"
    assert time.monotonic() - started < 1.0
    assert await down.ready() == "redis"
    assert await a.ready() is None


async def test_a_store_outage_buffers_presence_in_redis_then_drains(
    make_redis_hub: RedisHubFactory, tmp_path: object
) -> None:
    a = await make_redis_hub()
    store = a.store
    assert isinstance(store, FlakyStore)
    store.down = True
    for i in range(50):
        await a.heartbeat(f"s{i}")  # presence goes on while the store is down

    async def buffered() -> bool:
        return a.outbox_backlog >= 50

    await until(buffered)
    assert await store.last_seq() == 0
    assert a.metrics.outbox_failures.get() >= 1
    store.down = False

    async def drained() -> bool:
        return await store.last_seq() >= 50

    await until(drained)
    events = await store.events(0, 1000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert (await store.get_device("s49")) is not None


async def test_a_redis_that_lost_its_data_is_refilled_from_the_store(
    make_redis_hub: RedisHubFactory,
) -> None:
    a = await make_redis_hub(background=False)
    await a.put_device("kept", profile="slow", labels={"site": "north"})
    await a.heartbeat("kept", attributes={"fw": "2"})
    before, _ = await a.read_device("kept")
    await a.store.apply(Batch(upserts=[before]))  # what the outbox would have written
    keys = [key async for key in a.redis.scan_iter(match=a.keys.tag + "*")]
    await a.redis.delete(*keys)  # Redis restarted without persistence
    b = await make_redis_hub(background=False, store=a.store)
    record, profile = await b.read_device("kept")
    assert (record.profile, profile.name, dict(record.labels)) == (
        "slow",
        "slow",
        {"site": "north"},
    )
    assert record.attributes == {"fw": "2"}
    assert record.state == before.state
    assert await b.redis.zscore(b.keys.deadlines, "kept") is not None
    assert await b.current_seq() == await a.store.last_seq()


async def test_device_messages_reach_subscribers_of_every_instance(
    make_redis_hub: RedisHubFactory,
) -> None:
    a = await make_redis_hub()
    b = await make_redis_hub()
    subscriber, _ = await b.open_stream(StreamFilter(), None)
    await a.put_device("gw-9", profile="slow", labels={"site": "east"})
    await a.delete_device("gw-9")
    kinds = []
    for _ in range(2):
        message = await subscriber.get(timeout=5.0)
        assert message is not None
        kinds.append((message[0], orjson.loads(message[2])["action"]))
    assert kinds == [(DEVICE, "created"), (DEVICE, "deleted")]


async def test_a_burst_of_subscribers_is_served_from_a_few_connections(
    make_redis_hub: RedisHubFactory,
) -> None:
    """Every dashboard reconnecting at once: the opens queue for a bounded number of
    slots on the connections opened at start, instead of each opening a connection
    under the connect timeout (which, on a busy loop, answered some of them 503)."""
    a = await make_redis_hub(background=False)
    await a.heartbeats([(f"b{i}", None, None) for i in range(50)])

    async def subscribe() -> int:
        await a.open_stream(StreamFilter(), None)
        _, devices = await a.read_snapshot(StreamFilter())
        return len(devices)

    assert await asyncio.gather(*(subscribe() for _ in range(200))) == [50] * 200
    pool = a.redis.connection_pool
    opened = len(pool._available_connections) + len(pool._in_use_connections)
    assert opened <= WARM_CONNECTIONS


async def test_seen_ticks_reach_subscribers_of_every_instance(
    make_redis_hub: RedisHubFactory,
) -> None:
    a = await make_redis_hub()
    b = await make_redis_hub()
    await a.put_device("north-1", profile="slow", labels={"site": "north"})
    await a.put_device("south-1", profile="slow", labels={"site": "south"})
    await a.heartbeat("north-1")
    await a.heartbeat("south-1")
    everyone, _ = await b.open_stream(StreamFilter(), None)
    north, _ = await b.open_stream(StreamFilter(labels=(("site", "north"),)), None)
    await a.heartbeat("north-1")  # no transition: only last_seen moves
    await a.heartbeat("south-1")

    async def next_seen(subscriber: Subscriber) -> dict[str, str]:
        for _ in range(20):
            message = await subscriber.get(timeout=5.0)
            assert message is not None, "no seen message within 5 s"
            if message[0] == SEEN:
                devices: dict[str, str] = orjson.loads(message[2])["devices"]
                return devices
        raise AssertionError("no seen message")

    got = await next_seen(everyone)
    record, _ = await b.read_device("north-1")
    assert record.state.last_seen is not None
    assert got.get("north-1") == rfc3339(record.state.last_seen)
    assert "south-1" in got or "south-1" in await next_seen(everyone)
    assert set(await next_seen(north)) == {"north-1"}  # the label filter holds
