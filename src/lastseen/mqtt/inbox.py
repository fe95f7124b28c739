"""The bounded queue between the MQTT client and the hub.

The MQTT client library hands over each message from its socket callback; the
bridge takes them off in batches. The queue holds at most ``limit`` messages. When
it is full the *newest* message is dropped and counted (policy ``drop_newest``):
the messages already queued are older signs of life that are applied anyway, and
dropping at the door costs nothing while the hub catches up. A QoS 1 message
dropped this way was already acknowledged to the broker.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

#: ``(topic, payload, retained)`` of one inbound message.
Item = tuple[str, bytes, bool]


class Inbox:
    def __init__(self, limit: int, on_overflow: Callable[[], None]) -> None:
        self.limit = limit
        self._items: deque[Item] = deque()
        self._wake = asyncio.Event()
        self._on_overflow = on_overflow

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: Item) -> bool:
        """Queue ``item``; False (and counted) when the queue is full."""
        if len(self._items) >= self.limit:
            self._on_overflow()
            return False
        self._items.append(item)
        self._wake.set()
        return True

    async def wait(self) -> None:
        """Until at least one item is queued."""
        while not self._items:
            self._wake.clear()
            await self._wake.wait()

    def take(self, limit: int) -> list[Item]:
        """Up to ``limit`` items, oldest first, without waiting."""
        items = self._items
        count = min(limit, len(items))
        return [items.popleft() for _ in range(count)]


def handoff_queue(inbox: Inbox) -> type[asyncio.Queue[Any]]:
    """A queue class for ``aiomqtt.Client(queue_type=...)`` that hands every message
    straight to ``inbox``.

    aiomqtt's own iterator costs a task per message; this keeps the library's
    connection handling and moves messages in batches instead. Its ``get`` never
    returns, so iterating ``client.messages`` only ever ends with the disconnect
    error, which is how the bridge learns that the connection dropped.
    """

    class HandoffQueue(asyncio.Queue[Any]):
        def put_nowait(self, item: Any) -> None:
            inbox.offer((item.topic.value, item.payload, item.retain))

    return HandoffQueue
