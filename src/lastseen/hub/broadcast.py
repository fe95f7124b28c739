"""Fan-out of committed transitions to stream subscribers (SSE and WebSocket).

Every transition is serialised once, when it is published, and the same bytes go to
every subscriber. Each subscriber has a bounded queue; a subscriber that falls
further behind than that is sent a ``reset`` and disconnected, so one slow browser
can never slow the hub or grow its memory (the overflow is counted in metrics).
A ring of recent events lets a reconnecting subscriber resume without a query.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from lastseen.presence import Status


@dataclass(slots=True)
class WireEvent:
    """A published transition: its routing facts and its serialised JSON object.

    Treated as immutable, but not ``frozen``: a frozen dataclass sets each field
    through ``object.__setattr__``, four times the cost of building this one, and a
    burst builds 10^5 of them."""

    seq: int
    device_id: str
    from_status: Status
    to_status: Status
    labels: Mapping[str, str]
    json: bytes


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """Which transitions a subscriber wants; empty fields match everything."""

    devices: frozenset[str] = frozenset()
    statuses: frozenset[Status] = frozenset()
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def is_open(self) -> bool:
        return not (self.devices or self.statuses or self.labels)

    def matches_device(self, device_id: str, labels: Mapping[str, str]) -> bool:
        if self.devices and device_id not in self.devices:
            return False
        return all(labels.get(k) == v for k, v in self.labels)

    def matches(self, event: WireEvent) -> bool:
        if self.statuses and not (
            event.from_status in self.statuses or event.to_status in self.statuses
        ):
            return False
        return self.matches_device(event.device_id, event.labels)


#: Message kinds a subscriber receives, paired with their JSON body.
TRANSITION, SEEN, RESET, DEVICE = "transition", "seen", "reset", "device"

#: ``(kind, seq, JSON body)``; seq is 0 for messages that are not transitions.
Message = tuple[str, int, bytes]


@dataclass(slots=True, eq=False)
class Subscriber:
    """One open stream. The stream handler awaits ``get()``; the hub calls ``push``."""

    filter: StreamFilter
    limit: int
    #: Live transitions with a seq at or below this were already sent by the backfill.
    skip_through: int = 0
    queue: deque[Message] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    overflowed: bool = False
    #: How a WebSocket carrying this subscription is closed when it ends (RFC 6455):
    #: 1001 going away (shutdown); 1008 policy (its key was revoked).
    close_code: int = 1001
    close_reason: str = ""

    def push(self, kind: str, seq: int, body: bytes) -> bool:
        """Queue a message; False (and the subscriber is reset) when it is too far behind."""
        if self.closed:
            return True
        if kind == TRANSITION and seq <= self.skip_through:
            return True
        if len(self.queue) >= self.limit:
            self.overflowed = True
            self.queue.clear()
            self.queue.append((RESET, seq, orjson.dumps({"type": RESET, "reason": "slow"})))
            self.closed = True
            self.wake.set()
            return False
        self.queue.append((kind, seq, body))
        self.wake.set()
        return True

    def push_transitions(self, messages: list[Message]) -> bool:
        """``push`` for transition messages in seq order, at once: what pushing them
        one by one would leave in the queue, including the reset of an overflow."""
        if self.closed or not messages:
            return True
        if messages[0][1] <= self.skip_through:
            skip = self.skip_through
            messages = [m for m in messages if m[1] > skip]
        if len(self.queue) + len(messages) > self.limit:
            # One by one, the first message past the limit would have reset it.
            first_lost = messages[self.limit - len(self.queue)]
            self.overflowed = True
            self.queue.clear()
            self.queue.append(
                (RESET, first_lost[1], orjson.dumps({"type": RESET, "reason": "slow"}))
            )
            self.closed = True
            self.wake.set()
            return False
        self.queue.extend(messages)
        if messages:
            self.wake.set()
        return True

    async def get(self, timeout: float | None = None) -> Message | None:
        """Next message, or None on timeout (for keep-alives) or when closed and drained."""
        while True:
            while not self.queue:
                if self.closed:
                    return None
                self.wake.clear()
                try:
                    async with asyncio.timeout(timeout):
                        await self.wake.wait()
                except TimeoutError:
                    return None
            message = self.queue.popleft()
            # Pushed before a backfill raised the bar: already sent by the backfill.
            if message[0] != TRANSITION or message[1] > self.skip_through:
                return message

    def drain(self, limit: int = 1024) -> list[Message]:
        """Up to ``limit`` more queued messages, without waiting (senders batch writes)."""
        out: list[Message] = []
        queue = self.queue
        skip = self.skip_through
        while queue and len(out) < limit:
            message = queue.popleft()
            if message[0] != TRANSITION or message[1] > skip:
                out.append(message)
        return out

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class Broadcaster:
    def __init__(
        self,
        *,
        replay_size: int,
        queue_size: int,
        on_overflow: Callable[[], None] = lambda: None,
    ) -> None:
        self.replay: deque[WireEvent] = deque(maxlen=replay_size)
        self.subscribers: set[Subscriber] = set()
        #: In-process consumers of transitions only (the notifier): not streams, so
        #: they get no ``seen``/``device`` messages and count as no stream subscriber.
        self.taps: set[Subscriber] = set()
        self.queue_size = queue_size
        self._on_overflow = on_overflow

    def subscribe(self, stream_filter: StreamFilter) -> Subscriber:
        subscriber = Subscriber(stream_filter, self.queue_size)
        self.subscribers.add(subscriber)
        return subscriber

    def tap(self, stream_filter: StreamFilter) -> Subscriber:
        """A subscriber for transitions only, outside ``subscribers`` (see ``taps``)."""
        subscriber = Subscriber(stream_filter, self.queue_size)
        self.taps.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscriber.close()
        self.subscribers.discard(subscriber)
        self.taps.discard(subscriber)

    def publish(self, events: Iterable[WireEvent]) -> None:
        """Send committed events, in seq order, to every matching subscriber."""
        events = list(events)
        self.replay.extend(events)
        # One message per event, shared by every subscriber that takes it; each
        # subscriber's share is queued at once (a burst is 10^5 events).
        messages = [(TRANSITION, event.seq, event.json) for event in events]
        # A snapshot: an overflowing subscriber is removed from the set mid-loop.
        for subscriber in (*self.subscribers, *self.taps):
            stream_filter = subscriber.filter
            if stream_filter.is_open:
                wanted = messages
            else:
                matches = stream_filter.matches
                wanted = [m for m, e in zip(messages, events, strict=True) if matches(e)]
            if not subscriber.push_transitions(wanted):
                self._dropped(subscriber)

    def publish_message(self, kind: str, body_for: Callable[[StreamFilter], bytes | None]) -> None:
        """Send a non-transition message; ``body_for`` builds it per filter (None: skip)."""
        cache: dict[StreamFilter, bytes | None] = {}
        for subscriber in list(self.subscribers):
            key = subscriber.filter
            if key not in cache:
                cache[key] = body_for(key)
            body = cache[key]
            if body is not None:
                self._push(subscriber, kind, 0, body)

    def _push(self, subscriber: Subscriber, kind: str, seq: int, body: bytes) -> None:
        if not subscriber.push(kind, seq, body):
            self._dropped(subscriber)

    def _dropped(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self.taps.discard(subscriber)
        self._on_overflow()

    def replay_after(self, after: int) -> list[WireEvent] | None:
        """Events with seq > ``after`` from memory, or None if the ring does not reach back."""
        replay = self.replay
        if not replay or replay[0].seq > after + 1:
            return None
        return [e for e in replay if e.seq > after]

    def close_all(self) -> None:
        """Close every stream (on shutdown). Taps are not streams: their owners close
        them when they stop."""
        for subscriber in list(self.subscribers):
            self.unsubscribe(subscriber)
