"""The bounded queue between the inbound connection and the hub.

The connection hands over every socket read's messages as one chunk; the bridge
takes them off in batches of at most ``BATCH`` messages. The queue holds about
``limit`` messages. Its overflow policy is **back-pressure, never dropping**: when
an offer brings it to ``limit``, that connection stops reading from its socket
(``pause_reading``) and resumes once the bridge has taken the queue down to half.
The bytes wait in the kernel and at the broker instead, so:

* at QoS 1 nothing is lost — and since a message is acknowledged only after the
  hub applied it, the broker's receive-maximum window bounds what is in flight;
* at QoS 0 the broker, which cannot push back on its publishers, applies its own
  limits to what it queues for this subscriber (MQTT has no QoS 0 flow control).

A chunk keeps the connection it came from, so acknowledgements go back on that
connection and never on a later one, whose packet ids mean other messages.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from lastseen.mqtt.codec import Publish


class Feed(Protocol):
    """Where a chunk came from: a connection that can pause and acknowledge."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def ack(self, packet_ids: Sequence[int]) -> None: ...


#: Messages of one read and the connection they arrived on.
Chunk = tuple[Feed, list[Publish]]


class Inbox:
    def __init__(self, limit: int, on_pause: Callable[[], None]) -> None:
        self.limit = limit
        self._chunks: deque[Chunk] = deque()
        self._count = 0
        self._paused: set[Feed] = set()
        self._wake = asyncio.Event()
        self._on_pause = on_pause

    def __len__(self) -> int:
        return self._count

    def offer(self, feed: Feed, publishes: list[Publish]) -> None:
        """Queue one read's messages; pause ``feed`` if that fills the queue."""
        self._chunks.append((feed, publishes))
        self._count += len(publishes)
        self._wake.set()
        if self._count >= self.limit and feed not in self._paused:
            self._paused.add(feed)
            feed.pause_reading()
            self._on_pause()

    async def wait(self) -> None:
        """Until at least one message is queued."""
        while not self._count:
            self._wake.clear()
            await self._wake.wait()

    def take(self, limit: int) -> list[Chunk]:
        """Up to ``limit`` messages, oldest first, without waiting (a chunk may be
        split); resumes paused connections once the queue is down to half."""
        taken: list[Chunk] = []
        room = limit
        chunks = self._chunks
        while chunks and room > 0:
            feed, publishes = chunks[0]
            if len(publishes) <= room:
                chunks.popleft()
                taken.append((feed, publishes))
                room -= len(publishes)
            else:
                taken.append((feed, publishes[:room]))
                chunks[0] = (feed, publishes[room:])
                room = 0
        self._count -= limit - room
        if self._paused and self._count <= self.limit // 2:
            for feed in self._paused:
                feed.resume_reading()
            self._paused.clear()
        return taken

    def forget(self, feed: Feed) -> None:
        """A connection ended: it is no longer paused (its queued messages stay)."""
        self._paused.discard(feed)
