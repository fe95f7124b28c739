"""The shared hub on a real 3-master Redis Cluster that the test starts on loopback.

Every key of one hub carries the tag ``{<prefix>}``, so each script touches one slot
(scaleout/keys.py); this checks that the scripts, the pipelined batch, the blocking
fan-out and the outbox's consumer group all work through ``RedisCluster``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from lastseen.hub.broadcast import TRANSITION, StreamFilter
from tests.scaleout.cluster import RedisCluster
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
