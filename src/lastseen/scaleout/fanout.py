"""Fan-out: every instance reads the one event stream and feeds its own subscribers.

A transition caused on instance A (a heartbeat) or fired by any instance's sweeper
is appended to the stream inside the same script that made it; each instance's
fan-out task blocks on ``XREAD`` and publishes what arrives, in stream (= seq)
order, to its local broadcaster. So an SSE subscriber on instance C sees everything,
wherever it happened.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from redis import exceptions as rexc

from lastseen.hub.broadcast import DEVICE, WireEvent
from lastseen.presence import Source
from lastseen.scaleout.codec import event_from_entry
from lastseen.scaleout.connection import OUTAGE, connect
from lastseen.store import EventRecord
from lastseen.wire import compact, event_json

if TYPE_CHECKING:
    from lastseen.scaleout.hub import RedisHub

log = logging.getLogger("lastseen.scaleout")

#: Milliseconds one XREAD blocks; the socket timeout must exceed it.
BLOCK_MS = 500
#: Entries read per call (bounds the memory of one burst).
COUNT = 2000


def wire_event(event: EventRecord, labels: Mapping[str, str]) -> WireEvent:
    t = event.transition
    body = compact(orjson.dumps(event_json(event.seq, event.device_id, t)))
    return WireEvent(event.seq, event.device_id, t.from_status, t.to_status, labels, body)


class FanOut:
    def __init__(self, hub: RedisHub) -> None:
        self.hub = hub
        self.client: Any = connect(
            hub.redis_url, timeout=BLOCK_MS / 1000 + 2.0, cluster=hub.cluster
        )

    async def run(self, seq: int) -> None:
        hub = self.hub
        stream = hub.keys.stream
        last = f"{seq}-0"
        try:
            while not hub.stopping.is_set():
                try:
                    reply = await self.client.xread({stream: last}, count=COUNT, block=BLOCK_MS)
                except (*OUTAGE, rexc.RedisError) as exc:
                    hub.metrics.redis_errors.inc(1.0, "fanout")
                    log.warning("event=fanout_failed reason=%s", type(exc).__name__)
                    await hub.pause(0.2)
                    continue
                for _, entries in reply or ():
                    if not entries:
                        continue
                    last = entries[-1][0]
                    events = []
                    for entry_id, fields in entries:
                        if entry_id.endswith("-0"):
                            events.append(event_from_entry(entry_id, fields))
                            continue
                        self.publish(events)  # in stream order around device messages
                        events = []
                        self.publish_device(fields)
                    self.publish(events)
        finally:
            # Closes the connection a cancelled XREAD still holds, too.
            pool = getattr(self.client, "connection_pool", None)  # a cluster has one per node
            if pool is not None:
                await pool.disconnect(inuse_connections=True)
            await self.client.aclose()

    def publish_device(self, fields: Mapping[str, str]) -> None:
        """A device created/updated/deleted on any instance, to local subscribers (or
        another message about one device, named by ``k``: an alert)."""
        broadcaster = self.hub.broadcaster
        if not broadcaster.subscribers:
            return
        raw = fields["m"].encode()
        device_id = fields["d"]
        labels: dict[str, str] = orjson.loads(fields.get("l", "{}"))
        broadcaster.publish_message(
            fields.get("k", DEVICE), lambda f: raw if f.matches_device(device_id, labels) else None
        )

    def publish(self, events: list[tuple[EventRecord, dict[str, str]]]) -> None:
        hub = self.hub
        if not events:
            return
        now = hub.clock.now()
        lag = hub.metrics.timeout_lag
        transitions = hub.metrics.transitions
        wire = []
        for event, labels in events:
            t = event.transition
            transitions.inc(1.0, t.from_status.value, t.to_status.value)
            if t.source is Source.TIMEOUT:
                # Both clocks are hosts' clocks here; skew between them shows in this metric.
                lag.observe(max(0.0, now - t.at))
            wire.append(wire_event(event, labels))
        hub.published_seq = events[-1][0].seq
        hub.broadcaster.publish(wire)
