"""The Redis edge across a restart: pooled connections that died with the own_redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lastseen.errors import Unavailable
from tests.scaleout.cluster import RedisServer
from tests.scaleout.conftest import RedisHubFactory

pytestmark = pytest.mark.anyio


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


async def test_reads_after_a_redis_restart_succeed_on_the_first_try(
    own_redis: RedisServer, make_redis_hub: RedisHubFactory
) -> None:
    """The pool still holds connections to the old server (opened at start); a read
    taking one is tried again on a fresh connection instead of answering 503."""
    hub = await make_redis_hub(url=own_redis.url, background=False)
    await hub.heartbeat("pi-1")
    await asyncio.to_thread(own_redis.restart)  # the loop runs: it sees the old sockets close
    record, _ = await hub.read_device("pi-1")
    assert record.id == "pi-1"
    assert await hub.knows("pi-1")
    assert await hub.current_seq() >= 1
    assert await hub.ready() is None


async def test_a_read_right_after_a_restart_the_loop_did_not_see_succeeds(
    own_redis: RedisServer, make_redis_hub: RedisHubFactory
) -> None:
    hub = await make_redis_hub(url=own_redis.url, background=False)
    await hub.heartbeat("pi-1")
    own_redis.restart()  # the loop is blocked meanwhile: the old sockets look alive
    assert await hub.device_count() == 1


async def test_an_outage_still_answers_unavailable_within_a_second(
    own_redis: RedisServer, make_redis_hub: RedisHubFactory
) -> None:
    hub = await make_redis_hub(url=own_redis.url, background=False)
    await hub.heartbeat("pi-1")
    own_redis.stop()
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await hub.read_device("pi-1")
    assert time.monotonic() - started < 1.0
