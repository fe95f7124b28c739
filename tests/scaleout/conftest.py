"""Shared hubs on the real Redis (a private key prefix) and SQLite stores in a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from lastseen.errors import StoreError
from lastseen.presence import Profile, ProfileRegistry
from lastseen.scaleout.hub import RedisHub
from lastseen.settings import Settings
from lastseen.store import Batch, SQLiteStore
from tests.pgserver import private_postgres

__all__ = ["private_postgres"]  # a fixture for this folder's tests

#: Short real-time thresholds: these tests run on Redis's clock, which cannot be faked.
FAST = Profile(stale_after=0.3, offline_after=0.6)


class FlakyStore(SQLiteStore):
    """The real SQLite store, refusing every write while ``down`` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.down = False
        self.batches: list[Batch] = []

    async def apply(self, batch: Batch) -> None:
        if self.down:
            raise StoreError("the store is down (test)")
        self.batches.append(batch)
        await super().apply(batch)


def settings(**overrides: Any) -> Settings:
    profiles = ProfileRegistry([FAST, Profile(name="slow", stale_after=50.0, offline_after=100.0)])
    return Settings(**{"profiles": profiles, **overrides})


RedisHubFactory = Callable[..., Coroutine[Any, Any, RedisHub]]


@pytest.fixture
async def make_redis_hub(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> AsyncIterator[RedisHubFactory]:
    """Start instances sharing one Redis prefix and one store file; stopped at the end."""
    running: list[RedisHub] = []

    async def factory(
        *, url: str | None = None, store: Any = None, start: bool = True, **options: Any
    ) -> RedisHub:
        hub = RedisHub(
            settings(),
            store or FlakyStore(tmp_path / "store.db"),
            url or redis_url,
            prefix=redis_prefix,
            **options,
        )
        if start:
            await hub.start()
            running.append(hub)
        else:
            idle.append(hub)
        return hub

    idle: list[RedisHub] = []
    yield factory
    for hub in running:
        await hub.stop()
    for hub in idle:
        await hub.redis.aclose()
