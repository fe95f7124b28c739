"""Hubs for the ``HubAPI`` contract suite: every implementation, one fixture.

The seam both hubs implement is ``lastseen.hub.api.HubAPI``. Each backend here builds
one started hub on a fresh location with a manual clock, and says how to fire due
deadlines. Time moves only when a test moves the clock: the embedded hub reads its
``Clock``; ``RedisHub`` gets the same clock as ``script_clock``, which replaces
Redis's ``TIME`` in its scripts (tests only). To run the suite on another hub, add a
factory to ``HUBS``; nothing in the tests changes. Backends needing a server take it
from ``tests/services.py`` (skip when absent, fail under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lastseen.clock import ManualClock
from lastseen.hub.api import HubAPI
from lastseen.hub.core import Hub
from lastseen.presence import Profile, ProfileRegistry
from lastseen.scaleout.hub import RedisHub
from lastseen.settings import Settings
from lastseen.store import SQLiteStore, Store
from lastseen.store.postgres import PostgresStore

T0 = 1_800_000_000.0


def settings() -> Settings:
    profiles = ProfileRegistry(
        [
            Profile(stale_after=10.0, offline_after=30.0),
            Profile(name="fast", stale_after=1.0, offline_after=2.0),
        ]
    )
    # Write-behind never flushes by itself during a test.
    return Settings(profiles=profiles, flush_interval=3600.0)


@dataclass
class Fleet:
    """A started hub, its clock, and how to fire the deadlines due now."""

    hub: HubAPI
    clock: ManualClock
    fire: Callable[[], Awaitable[int]]
    name: str = ""

    async def settled(self, timeout: float = 5.0) -> None:
        """Wait until everything assigned a seq is published to this hub's streams
        (the embedded hub publishes after commit; RedisHub's fan-out reads Redis)."""
        deadline = time.monotonic() + timeout
        current = await self.hub.current_seq()
        while getattr(self.hub, "published_seq") < current:  # noqa: B009 - both hubs have it
            assert time.monotonic() < deadline, "events were not published in time"
            await asyncio.sleep(0.01)


async def _embedded(store: Store, clock: ManualClock) -> Fleet:
    hub = Hub(settings(), store, clock)
    await hub.start(timers=False)  # deadlines fire only when a test says so

    async def fire() -> int:
        return await hub.sweep(clock.now())

    return Fleet(hub, clock, fire)


async def _redis(store: Store, clock: ManualClock, url: str, prefix: str) -> Fleet:
    hub = RedisHub(settings(), store, url, prefix=prefix, clock=clock, script_clock=clock)
    await hub.start()

    async def fire() -> int:
        fired, _, _, _ = await hub.sweeper.sweep(clock.now())
        return fired

    return Fleet(hub, clock, fire)


FleetFactory = Callable[[pytest.FixtureRequest, Path, ManualClock], Awaitable[Fleet]]


def _pg(request: pytest.FixtureRequest) -> Store:
    return PostgresStore(request.getfixturevalue("postgres_dsn"), max_size=4)


#: name -> factory(request, tmp_path, clock); a factory may ask ``request`` for fixtures.
HUBS: dict[str, FleetFactory] = {
    "embedded-sqlite": lambda _r, tmp, clock: _embedded(SQLiteStore(tmp / "hub.db"), clock),
    "embedded-postgres": lambda r, _tmp, clock: _embedded(_pg(r), clock),
    "redis-postgres": lambda r, _tmp, clock: _redis(
        _pg(r), clock, r.getfixturevalue("redis_url"), r.getfixturevalue("redis_prefix")
    ),
}


@pytest.fixture(params=list(HUBS))
async def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fleet]:
    made = await HUBS[request.param](request, tmp_path, ManualClock(T0))
    made.name = request.param
    try:
        yield made
    finally:
        await made.hub.stop()
