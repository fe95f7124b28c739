"""Deadline sweeping on every instance at once, without a leader.

Each instance calls the sweep script in a loop. The script claims due devices from
the deadline index, re-checks each against the rules and transitions it, all in one
atomic call: two instances sweeping at the same moment simply run one after the
other inside Redis, and the second finds nothing due. Each expiry is thereby fired
exactly once, stamped with its deadline (healthchecks' sendalerts compare-and-set,
done by Redis itself). An instance killed mid-sweep loses nothing: a script either
ran completely or not at all.

The loop is adaptive: after a sweep it sleeps until the earliest deadline in the
index (Redis's clock, as reported by the script), never longer than ``MAX_SLEEP``
so a deadline scheduled meanwhile by another instance waits at most that long; a
full batch is followed at once by the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from redis import exceptions as rexc

from lastseen.scaleout import lua
from lastseen.scaleout.connection import OUTAGE

if TYPE_CHECKING:
    from lastseen.scaleout.hub import RedisHub

log = logging.getLogger("lastseen.scaleout")

#: Longest sleep between sweeps (bounds the lag of a deadline set by another instance).
MAX_SLEEP = 0.05
#: Devices claimed per script call: bounds how long one call blocks Redis (~5 ms).
BATCH = 500
_COUNTS_EVERY = 1.0


class Sweeper:
    def __init__(self, hub: RedisHub) -> None:
        self.hub = hub
        self.script = hub.redis.register_script(lua.SWEEP)
        self._counts_at = 0.0

    async def sweep(self, now: float | None = None) -> tuple[int, int, float | None, float]:
        """One sweep call: (transitions fired, devices claimed, next deadline, now)."""
        hub = self.hub
        k = hub.keys
        reply = await self.script(
            keys=[k.deadlines, k.seq, k.stream, k.counts],
            args=[
                k.device_prefix,
                BATCH,
                hub.stream_max,
                hub.now_override() if now is None else repr(now),
                hub.published_seq,
            ],
        )
        fired, claimed = int(reply[0]), int(reply[1])
        if fired:
            hub.metrics.swept.inc(float(fired))
        return fired, claimed, float(reply[2]) if reply[2] else None, float(reply[3])

    async def run(self) -> None:
        while not self.hub.stopping.is_set():
            try:
                _, claimed, upcoming, now = await self.sweep()
                await self._refresh_counts()
            except (*OUTAGE, rexc.RedisError) as exc:
                self.hub.metrics.redis_errors.inc(1.0, "sweeper")
                log.warning("event=sweep_failed reason=%s", type(exc).__name__)
                await self.hub.pause(0.2)
                continue
            if claimed >= BATCH:
                await asyncio.sleep(0)
                continue
            delay = MAX_SLEEP if upcoming is None else min(max(upcoming - now, 0.001), MAX_SLEEP)
            await self.hub.pause(delay)

    async def _refresh_counts(self) -> None:
        mono = time.monotonic()
        if mono - self._counts_at < _COUNTS_EVERY:
            return
        self._counts_at = mono
        counts = await self.hub.redis.hgetall(self.hub.keys.counts)
        for status in self.hub.status_counts:
            self.hub.status_counts[status] = int(counts.get(status, 0))
