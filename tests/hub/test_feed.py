"""``HubAPI.transitions``: the same contract on the embedded hub and on the shared hub.

Each case runs on both: the embedded ``Hub`` (SQLite, manual clock) and a ``RedisHub``
on the real Redis (a private key prefix) with a SQLite store. The contract: every
transition after the seq, once, in seq order, backfill then live; a slow consumer
loses nothing; history that is gone comes as one explicit ``FeedReset``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from lastseen.clock import ManualClock
from lastseen.hub.api import HubAPI
from lastseen.hub.core import Hub
from lastseen.hub.feed import FeedEvent, FeedItem, FeedReset
from lastseen.presence import Observation, Source, Status
from lastseen.store import SQLiteStore
from tests.hub.conftest import T0, settings

pytestmark = pytest.mark.anyio

HubMaker = Callable[..., Coroutine[Any, Any, HubAPI]]


@pytest.fixture(params=["embedded", "redis"])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HubMaker]:
    running: list[HubAPI] = []

    async def factory(**overrides: Any) -> HubAPI:
        store = SQLiteStore(tmp_path / "hub.db")
        hub: HubAPI
        if request.param == "embedded":
            embedded = Hub(settings(**overrides), store, ManualClock(T0))
            await embedded.start(timers=False)
            hub = embedded
        else:
            from lastseen.scaleout.hub import RedisHub

            url = request.getfixturevalue("redis_url")
            prefix = request.getfixturevalue("redis_prefix")
            hub = RedisHub(settings(**overrides), store, url, prefix=prefix)
            await hub.start()
        running.append(hub)
        return hub

    yield factory
    for hub in running:
        await hub.stop()


async def take(feed: AsyncGenerator[list[FeedItem], None], count: int) -> list[FeedItem]:
    """At least ``count`` items (whole batches), bounded in time."""
    items: list[FeedItem] = []
    async with asyncio.timeout(10):
        while len(items) < count:
            items += await anext(feed)
    return items


def seqs(items: list[FeedItem]) -> list[int]:
    return [i.seq for i in items if isinstance(i, FeedEvent)]


async def test_backfill_then_live_in_seq_order_each_once(make: HubMaker) -> None:
    hub = await make()
    for name in ("a", "b", "c"):
        await hub.heartbeat(name)
    first = await hub.current_seq() - 2
    feed = hub.transitions(first)
    try:
        items = await take(feed, 2)  # b and c: after the first seq
        assert seqs(items) == [first + 1, first + 2]
        await hub.heartbeat("d")
        await hub.apply("a", Observation(Source.DISCONNECT))
        items = await take(feed, 2)
        assert seqs(items) == [first + 3, first + 4]
        event = items[1]
        assert isinstance(event, FeedEvent)
        assert (event.device_id, event.from_status, event.to_status) == (
            "a",
            Status.ONLINE,
            Status.OFFLINE,
        )
        assert event.body["reason"] == "disconnected"
        assert event.body["seq"] == event.seq
    finally:
        await feed.aclose()


async def test_a_consumer_far_behind_its_tap_loses_nothing(make: HubMaker) -> None:
    hub = await make(subscriber_queue=8)
    start = await hub.current_seq()
    feed = hub.transitions(start)
    try:
        await hub.heartbeat("first")
        assert seqs(await take(feed, 1)) == [start + 1]
        # 60 transitions while the consumer reads nothing: its tap (8 deep) overflows
        # and the feed re-opens from its position, backfilling what the tap dropped.
        await hub.heartbeats([(f"d{i}", None, None) for i in range(60)])
        items = await take(feed, 60)
        metrics: Any = hub.metrics
        assert metrics.subscriber_resets.get() >= 1  # the tap did overflow
        assert not [i for i in items if isinstance(i, FeedReset)]
        assert seqs(items) == list(range(start + 2, start + 62))
    finally:
        await feed.aclose()


async def test_a_cursor_from_the_future_gets_one_reset_then_live(make: HubMaker) -> None:
    hub = await make()
    await hub.heartbeat("a")
    current = await hub.current_seq()
    feed = hub.transitions(current + 100)
    try:
        items = await take(feed, 1)
        assert items == [FeedReset(current, "unknown_seq")]
        await hub.heartbeat("b")
        assert seqs(await take(feed, 1)) == [current + 1]
    finally:
        await feed.aclose()
