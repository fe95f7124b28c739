"""The shared hub on a real 3-master Redis Cluster that the test starts on loopback.

Every key of one hub carries the tag ``{<prefix>}``, so each script touches one slot
(scaleout/keys.py); this checks that the scripts, the pipelined batch, the blocking
fan-out and the outbox's consumer group all work through ``RedisCluster``, and that a
cluster keeps the single server's outage promises: 503 within a second, no write sent
twice, and recovery without a restart of the hub.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lastseen.errors import Unavailable
from lastseen.hub.broadcast import TRANSITION, StreamFilter
from lastseen.scaleout.hub import RedisHub
from tests.scaleout.cluster import RedisCluster, RedisServer
from tests.scaleout.conftest import RedisHubFactory

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    started = RedisCluster(tmp_path_factory.mktemp("cluster"))
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A cluster this test may stop and freeze: its nodes keep their data (AOF)."""
    started = RedisCluster(tmp_path / "cluster", aof=True)
    try:
        started.start()
        yield started
    finally:
        started.stop()


def holder(cluster: RedisCluster, hub: RedisHub) -> RedisServer:
    """The master holding the hub's slot (every key of a hub has one hash tag)."""
    return cluster.node(hub.redis.get_node_from_key(hub.keys.seq).port)


async def unavailable_within(bound: float, call: Callable[[], Awaitable[Any]]) -> None:
    started = time.monotonic()
    with pytest.raises(Unavailable):
        async with asyncio.timeout(10):  # fails the bound below, not the whole run
            await call()
    assert time.monotonic() - started < bound


async def answers_again(call: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """``call()`` once it stops answering 503, on the same hub."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except Unavailable:
            assert time.monotonic() < deadline, "the hub did not recover"
            await asyncio.sleep(0.05)


async def test_two_instances_share_presence_on_a_redis_cluster(
    cluster: RedisCluster, make_redis_hub: RedisHubFactory
) -> None:
    a = await make_redis_hub(url=cluster.url)
    b = await make_redis_hub(url=cluster.url)
    subscriber, _ = await b.open_stream(StreamFilter(), None)
    results = await a.heartbeats([(f"c{i}", {"fw": "1"}, None) for i in range(20)])
    assert all(not isinstance(r, Exception) for r in results)
    await a.heartbeat("c-single")
    record, _ = await b.read_device("c7")
    beat = results[7]
    assert not isinstance(beat, Exception)
    assert record.state.last_seen == beat.state.last_seen  # A's write, read on B
    assert record.attributes == {"fw": "1"}
    got: list[int] = []
    while len(got) < 3 * 21:  # online, stale, offline for each, swept by either
        message = await subscriber.get(timeout=5.0)
        assert message is not None
        assert message[0] == TRANSITION
        got.append(message[1])
    assert got == list(range(1, 3 * 21 + 1))
    deadline = time.monotonic() + 10
    while await a.store.last_seq() < 3 * 21:
        assert time.monotonic() < deadline, "the outbox did not drain"
        await asyncio.sleep(0.05)
    assert [e.seq for e in await a.store.events(0, 1000)] == got


async def test_a_frozen_master_answers_503_within_a_second_and_runs_a_write_once(
    own_cluster: RedisCluster, make_redis_hub: RedisHubFactory
) -> None:
    """A master that hangs (SIGSTOP: connects succeed, nothing answers): each command
    times out once, and a heartbeat whose reply was lost is not sent again, so the
    script ran at most once when the node wakes."""
    hub = await make_redis_hub(url=own_cluster.url, background=False)
    await hub.heartbeat("pi-1")
    node = holder(own_cluster, hub)
    before = node.calls("evalsha")
    node.pause()
    try:
        await unavailable_within(1.5, lambda: hub.heartbeat("pi-2"))
        await unavailable_within(1.5, lambda: hub.read_device("pi-1"))
    finally:
        node.resume()
    assert node.calls("evalsha") - before <= 2  # the heartbeat once, the read once
    record, _ = await answers_again(lambda: hub.read_device("pi-1"))
    assert record.id == "pi-1"
    await hub.heartbeat("pi-3")


async def test_a_stopped_master_answers_503_within_a_second_and_the_hub_recovers(
    own_cluster: RedisCluster, make_redis_hub: RedisHubFactory
) -> None:
    hub = await make_redis_hub(url=own_cluster.url, background=False)
    await hub.heartbeat("pi-1")
    node = holder(own_cluster, hub)
    node.stop()
    await unavailable_within(1.5, lambda: hub.heartbeat("pi-2"))
    await unavailable_within(1.5, lambda: hub.read_device("pi-1"))
    await unavailable_within(1.5, hub.device_count)
    await asyncio.to_thread(node.start)
    record, _ = await answers_again(lambda: hub.read_device("pi-1"))
    assert record.id == "pi-1"
    await hub.heartbeat("pi-2")
    assert await hub.device_count() == 2


async def test_a_whole_cluster_down_answers_503_and_the_hub_recovers(
    own_cluster: RedisCluster, make_redis_hub: RedisHubFactory
) -> None:
    hub = await make_redis_hub(url=own_cluster.url, background=False)
    await hub.heartbeat("pi-1")
    own_cluster.stop()
    await unavailable_within(1.5, lambda: hub.heartbeat("pi-2"))
    await unavailable_within(1.5, lambda: hub.read_device("pi-1"))
    await asyncio.to_thread(lambda: [n.start() for n in own_cluster.nodes])
    record, _ = await answers_again(lambda: hub.read_device("pi-1"))
    assert record.id == "pi-1"
    await hub.heartbeat("pi-2")


async def test_a_frozen_cluster_answers_503_within_a_second_and_the_hub_recovers(
    own_cluster: RedisCluster, make_redis_hub: RedisHubFactory
) -> None:
    """Every node hangs: after the first timeout the node map is refreshed before each
    command, asking the nodes in turn, and that refresh is bounded as a whole."""
    hub = await make_redis_hub(url=own_cluster.url, background=False)
    await hub.heartbeat("pi-1")
    for node in own_cluster.nodes:
        node.pause()
    try:
        for _ in range(3):  # three nodes of 0.5 s each would take 1.5 s
            await unavailable_within(1.2, lambda: hub.read_device("pi-1"))
    finally:
        for node in own_cluster.nodes:
            node.resume()
    record, _ = await answers_again(lambda: hub.read_device("pi-1"))
    assert record.id == "pi-1"
