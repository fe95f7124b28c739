"""The retention loop prunes with the cutoff the clock and the setting give."""

from __future__ import annotations

import asyncio

import pytest

from lastseen.clock import ManualClock
from lastseen.retention import prune_forever

pytestmark = pytest.mark.anyio


async def test_prunes_at_once_with_now_minus_retention_then_waits() -> None:
    cutoffs: list[float] = []
    called = asyncio.Event()

    async def prune(before: float) -> int:
        cutoffs.append(before)
        called.set()
        return 3

    task = asyncio.create_task(prune_forever("events", prune, 60.0, ManualClock(1000.0)))
    await asyncio.wait_for(called.wait(), 1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cutoffs == [940.0]
