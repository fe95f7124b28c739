"""The Redis rate limiter: one GCRA for every instance, on Redis's clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from lastseen.scaleout.connection import connect
from lastseen.scaleout.keys import Keys
from lastseen.scaleout.ratelimit import RedisRateLimiter
from lastseen.security.ratelimit import Rate

pytestmark = pytest.mark.anyio


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[Any]]:
    made = [connect(redis_url), connect(redis_url)]
    yield made
    for client in made:
        await client.aclose()


async def test_a_limit_holds_across_instances(clients: list[Any], redis_prefix: str) -> None:
    keys = Keys(redis_prefix)
    a, b = (RedisRateLimiter(c, keys, "device") for c in clients)
    rate = Rate(per_minute=3)
    waits = [await limiter.acquire("pi-1", rate) for limiter in (a, b, a, b)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0 < waits[3] <= 20.0  # the fourth within the minute waits one emission interval
    assert await b.acquire("pi-2", rate) == 0.0  # subjects are independent


async def test_a_minimum_interval_refuses_without_counting(
    clients: list[Any], redis_prefix: str
) -> None:
    limiter = RedisRateLimiter(clients[0], Keys(redis_prefix), "key")
    rate = Rate(min_interval=30.0)
    assert await limiter.acquire("k1", rate) == 0.0
    first = await limiter.acquire("k1", rate)
    second = await limiter.acquire("k1", rate)
    assert 29.0 < second <= first <= 30.0  # refusals changed nothing


async def test_an_unreachable_redis_fails_open_and_is_counted(redis_prefix: str) -> None:
    client = connect("redis://127.0.0.1:1/0")
    errors: list[int] = []
    try:
        limiter = RedisRateLimiter(client, Keys(redis_prefix), "device", lambda: errors.append(1))
        assert await limiter.acquire("pi-1", Rate(per_minute=1)) == 0.0
        assert errors == [1]
    finally:
        await client.aclose()
