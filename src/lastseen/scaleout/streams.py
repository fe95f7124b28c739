"""Opening a stream on any instance, with resume by seq.

A subscriber that reconnects, to this instance or any other, with the last seq it
saw gets exactly what it missed: from this instance's ring of recent events, else
from the Redis stream (entry ids are ``<seq>-0``, so ``XRANGE`` by seq is direct),
else from the durable store for history older than the stream, else an explicit
``reset``. It subscribes first, so nothing published meanwhile is lost, and
``skip_through`` drops live copies of what the backfill covers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

import orjson

from lastseen.hub.broadcast import RESET, TRANSITION, Message, StreamFilter, Subscriber
from lastseen.scaleout.codec import event_from_entry, seq_of
from lastseen.scaleout.connection import translated
from lastseen.scaleout.fanout import wire_event
from lastseen.store import EventRecord

if TYPE_CHECKING:
    from lastseen.scaleout.hub import RedisHub

_PAGE = 500


async def _messages(messages: list[Message]) -> AsyncIterator[Message]:
    for message in messages:
        yield message


def _reset(reason: str, seq: int) -> Message:
    return (RESET, seq, orjson.dumps({"type": RESET, "reason": reason, "seq": seq}))


class StreamReader:
    def __init__(self, hub: RedisHub) -> None:
        self.hub = hub

    async def open(
        self, stream_filter: StreamFilter, after: int | None, *, tap: bool = False
    ) -> tuple[Subscriber, AsyncIterator[Message]]:
        """``tap``: an in-process consumer of transitions only (``Broadcaster.taps``)."""
        hub = self.hub
        broadcaster = hub.broadcaster
        subscriber = (broadcaster.tap if tap else broadcaster.subscribe)(stream_filter)
        upto = hub.published_seq
        if after is None:
            subscriber.skip_through = upto
            return subscriber, _messages([])
        subscriber.skip_through = max(after, upto)
        current = await hub.current_seq()
        if after > current:
            subscriber.skip_through = upto
            return subscriber, _messages([_reset("unknown_seq", current)])
        ring = hub.broadcaster.replay_after(after)
        if ring is not None:
            matching = [(TRANSITION, e.seq, e.json) for e in ring if stream_filter.matches(e)]
            return subscriber, _messages(matching)
        with translated():
            first = await hub.redis.xrange(hub.keys.stream, "-", "+", count=1)
        stream_first = seq_of(first[0][0]) if first else upto + 1
        if after + 1 < stream_first and after + 1 < await hub.store.first_seq():
            return subscriber, _messages([_reset("history_expired", current)])
        return subscriber, self._backfill(stream_filter, after, upto, stream_first)

    async def _backfill(
        self, stream_filter: StreamFilter, after: int, upto: int, stream_first: int
    ) -> AsyncIterator[Message]:
        cursor = after
        # Older than the stream: the store has it (the outbox drained it before the
        # stream was trimmed past it).
        while cursor + 1 < stream_first and cursor < upto:
            events = await self.hub.store.events(cursor, _PAGE)
            events = [e for e in events if e.seq < stream_first and e.seq <= upto]
            if not events:
                break
            labels: Mapping[str, dict[str, str]] = {}
            if stream_filter.labels:
                labels = await self._labels(events)
            for event in events:
                wire = wire_event(event, labels.get(event.device_id, {}))
                if stream_filter.matches(wire):
                    yield (TRANSITION, event.seq, wire.json)
            cursor = events[-1].seq
        cursor = max(cursor, stream_first - 1)
        while cursor < upto:
            with translated():
                entries = await self.hub.redis.xrange(
                    self.hub.keys.stream, f"{cursor + 1}-0", f"{upto}-0", count=_PAGE
                )
            if not entries:
                return
            for entry_id, fields in entries:
                cursor = seq_of(entry_id)
                if not entry_id.endswith("-0"):
                    continue
                event, event_labels = event_from_entry(entry_id, fields)
                wire = wire_event(event, event_labels)
                if stream_filter.matches(wire):
                    yield (TRANSITION, event.seq, wire.json)

    async def _labels(self, events: list[EventRecord]) -> Mapping[str, dict[str, str]]:
        ids = sorted({e.device_id for e in events})
        records, _ = await self.hub.reads.records(ids)
        return {r.id: dict(r.labels) for r in records if r is not None}
