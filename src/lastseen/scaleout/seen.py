"""Coalesced ``seen`` messages in scale-out mode, as the embedded hub sends them.

A ``seen`` message tells subscribers which devices showed a sign of life without a
transition (their ``last_seen`` moved), at most once a second. Heartbeats land on any
instance, so the observe script records every one in a sorted set scored by
``last_seen`` (``Keys.seen``); every instance reads what is newer than its cursor once
a second and sends it to its own subscribers. Entries older than ``KEEP`` seconds are
trimmed by whichever instance reads (idempotent), so the set holds only the devices
seen in the last few seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

import orjson
from redis import exceptions as rexc

from lastseen.hub.broadcast import SEEN, StreamFilter
from lastseen.scaleout.connection import OUTAGE
from lastseen.timefmt import rfc3339

if TYPE_CHECKING:
    from lastseen.scaleout.hub import RedisHub

log = logging.getLogger("lastseen.scaleout")

#: Seconds between messages (as the embedded hub).
EVERY = 1.0
#: Seconds of history kept in the set (several ticks, so a slow tick misses nothing).
KEEP = 10.0
#: Devices read per round trip.
_PAGE = 1000


def _message(
    stamps: Mapping[str, tuple[str, Mapping[str, str]]], stream_filter: StreamFilter
) -> bytes | None:
    """The ``seen`` message one subscriber's filter lets through (None: nothing)."""
    chosen = {
        device_id: at
        for device_id, (at, labels) in stamps.items()
        if stream_filter.matches_device(device_id, labels)
    }
    return orjson.dumps({"type": SEEN, "devices": chosen}) if chosen else None


class SeenTicker:
    def __init__(self, hub: RedisHub) -> None:
        self.hub = hub
        #: The newest last_seen this instance has sent; None until the first tick.
        self.cursor: float | None = None

    async def tick(self) -> int:
        """Send one ``seen`` message for what is new since the last tick; devices sent."""
        hub = self.hub
        k = hub.keys
        if self.cursor is None:  # start from now: older signs of life are not news
            newest = await hub.redis.zrange(k.seen, -1, -1, withscores=True)
            self.cursor = float(newest[0][1]) if newest else 0.0
            return 0
        seen: list[tuple[str, float]] = await hub.redis.zrangebyscore(
            k.seen, f"({self.cursor!r}", "+inf", withscores=True
        )
        if not seen:
            return 0
        self.cursor = seen[-1][1]
        await hub.redis.zremrangebyscore(k.seen, "-inf", f"({self.cursor - KEEP!r}")
        if not hub.broadcaster.subscribers:
            return 0
        labels: dict[str, Mapping[str, str]] = {}
        if any(not s.filter.is_open for s in hub.broadcaster.subscribers):
            ids = [device_id for device_id, _ in seen]
            for start in range(0, len(ids), _PAGE):
                records, _ = await hub.reads.records(ids[start : start + _PAGE])
                labels.update({r.id: r.labels for r in records if r is not None})
        empty: Mapping[str, str] = {}
        stamps = {d: (rfc3339(at), labels.get(d, empty)) for d, at in seen}
        hub.broadcaster.publish_message(SEEN, partial(_message, stamps))
        return len(stamps)

    async def run(self) -> None:
        while not self.hub.stopping.is_set():
            try:
                await self.tick()
            except (*OUTAGE, rexc.RedisError) as exc:
                self.hub.metrics.redis_errors.inc(1.0, "seen")
                log.warning("event=seen_failed reason=%s", type(exc).__name__)
            await self.hub.pause(EVERY)
