"""The ``RateLimiter`` contract, on the in-process limiter and on the Redis one shared
by every instance. Both run the same GCRA; a manual clock moves time for both (the
Redis script takes it in place of ``TIME``, tests only)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from lastseen.clock import ManualClock
from lastseen.scaleout.connection import connect
from lastseen.scaleout.keys import Keys
from lastseen.scaleout.ratelimit import RedisRateLimiter
from lastseen.security.ratelimit import MemoryRateLimiter, Rate, RateLimiter
from tests.contract.conftest import T0

pytestmark = pytest.mark.anyio

#: A limiter and a second one sharing its state (another instance; the same object
#: for the in-process limiter, which has no other instance to share with).
Pair = tuple[RateLimiter, RateLimiter]
Made = tuple[Pair, Callable[[], Awaitable[None]]]


async def _memory(_request: pytest.FixtureRequest, clock: ManualClock) -> Made:
    limiter = MemoryRateLimiter(clock)

    async def close() -> None:
        return None

    return (limiter, limiter), close


async def _redis(request: pytest.FixtureRequest, clock: ManualClock) -> Made:
    url = request.getfixturevalue("redis_url")
    keys = Keys(request.getfixturevalue("redis_prefix"))
    clients = [connect(url), connect(url)]
    a, b = (RedisRateLimiter(c, keys, "device", clock=clock) for c in clients)

    async def close() -> None:
        for client in clients:
            await client.aclose()

    return (a, b), close


LIMITERS = {"memory": _memory, "redis": _redis}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(params=list(LIMITERS))
async def limiters(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[Pair]:
    pair, close = await LIMITERS[request.param](request, clock)
    try:
        yield pair
    finally:
        await close()


async def test_a_per_minute_limit_holds_across_instances_and_refills(
    limiters: Pair, clock: ManualClock
) -> None:
    a, b = limiters
    rate = Rate(per_minute=3)
    waits = [await limiter.acquire("pi-1", rate) for limiter in (a, b, a, b)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(20.0)  # one emission interval (60 s / 3)
    assert await b.acquire("pi-2", rate) == 0.0  # subjects are independent
    clock.advance(20.0)
    assert await a.acquire("pi-1", rate) == 0.0
    assert await b.acquire("pi-1", rate) == pytest.approx(20.0)


async def test_a_refusal_counts_nothing(limiters: Pair, clock: ManualClock) -> None:
    a, b = limiters
    rate = Rate(min_interval=30.0)
    assert await a.acquire("k1", rate) == 0.0
    clock.advance(10.0)
    assert await b.acquire("k1", rate) == pytest.approx(20.0)
    assert await a.acquire("k1", rate) == pytest.approx(20.0)  # the refusal moved nothing
    clock.advance(20.0)
    assert await b.acquire("k1", rate) == 0.0


async def test_both_rules_together_wait_for_the_later(limiters: Pair, clock: ManualClock) -> None:
    a, _ = limiters
    rate = Rate(min_interval=5.0, per_minute=2)
    assert await a.acquire("d", rate) == 0.0
    assert await a.acquire("d", rate) == pytest.approx(5.0)
    clock.advance(5.0)
    assert await a.acquire("d", rate) == 0.0
    # Two a minute: the third waits until one emission interval (30 s) after the first.
    assert await a.acquire("d", rate) == pytest.approx(25.0)
