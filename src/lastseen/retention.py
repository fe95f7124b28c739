"""Retention: dropping history older than a setting, once an hour, forever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from lastseen.clock import Clock

log = logging.getLogger("lastseen.retention")


async def prune_forever(
    what: str,
    prune: Callable[[float], Awaitable[int]],
    retention: float,
    clock: Clock,
    every: float = 3600.0,
) -> None:
    """Call ``prune(now - retention)`` every ``every`` seconds; a failure is logged and
    retried next round (history kept a little longer never hurts)."""
    while True:
        try:
            pruned = await prune(clock.now() - retention)
        except Exception:  # pragma: no cover - logged, retried next round
            log.exception("event=prune_failed what=%s", what)
        else:
            if pruned:
                log.info("event=pruned what=%s count=%d", what, pruned)
        await asyncio.sleep(every)
