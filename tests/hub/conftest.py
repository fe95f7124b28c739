"""A hub on a real SQLite store in a temp dir, with a manual clock and no timers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from lastseen.clock import ManualClock
from lastseen.hub.core import Hub
from lastseen.presence import Profile, ProfileRegistry
from lastseen.settings import Settings
from lastseen.store import Batch, SQLiteStore

T0 = 1_800_000_000.0


class CountingStore(SQLiteStore):
    """The real SQLite store, counting the batches applied to it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[Batch] = []

    async def apply(self, batch: Batch) -> None:
        self.batches.append(batch)
        await super().apply(batch)


def settings(**overrides: Any) -> Settings:
    profiles = ProfileRegistry(
        [
            Profile(stale_after=10.0, offline_after=30.0),
            Profile(name="fast", stale_after=1.0, offline_after=2.0),
        ]
    )
    return Settings(**{"profiles": profiles, "flush_interval": 3600.0, **overrides})


HubFactory = Callable[..., Coroutine[Any, Any, Hub]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def make_hub(tmp_path: Path, clock: ManualClock) -> AsyncIterator[HubFactory]:
    """Start hubs on one database; every hub still running at the end is stopped."""
    running: list[Hub] = []

    async def factory(**overrides: Any) -> Hub:
        hub = Hub(settings(**overrides), CountingStore(tmp_path / "hub.db"), clock)
        await hub.start(timers=False)
        running.append(hub)
        return hub

    yield factory
    for hub in running:
        if hub.committer is not None and not hub.stopped:
            await hub.stop()
