"""Which key opened which stream, so that revoking a key closes its streams.

The stream handlers subscribe through ``hub.broadcaster.subscribe`` and know nothing
of keys. The auth middleware sets ``OWNER`` (a context variable) to the key id
before it hands a stream request on; the subscription made while serving that
request, in the same task or a task it starts, is filed under that key. Closing a
subscriber ends its stream the way a slow one is ended: an SSE response finishes,
a WebSocket is closed by the server.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from lastseen.hub.broadcast import Broadcaster, StreamFilter, Subscriber

#: The key id of the stream request being served (None outside one).
OWNER: ContextVar[str | None] = ContextVar("lastseen_stream_owner", default=None)


class StreamOwners:
    """Subscribers by key id, maintained by wrapping one broadcaster's subscribe/unsubscribe."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self._broadcaster = broadcaster
        self._by_key: dict[str, set[Subscriber]] = {}
        self._owner: dict[Subscriber, str] = {}
        subscribe = broadcaster.subscribe
        unsubscribe = broadcaster.unsubscribe

        def tracked_subscribe(stream_filter: StreamFilter) -> Subscriber:
            subscriber = subscribe(stream_filter)
            owner = OWNER.get()
            if owner is not None:
                self._owner[subscriber] = owner
                self._by_key.setdefault(owner, set()).add(subscriber)
            return subscriber

        def tracked_unsubscribe(subscriber: Subscriber) -> None:
            unsubscribe(subscriber)
            owner = self._owner.pop(subscriber, None)
            if owner is not None:
                owned = self._by_key.get(owner)
                if owned is not None:
                    owned.discard(subscriber)
                    if not owned:
                        del self._by_key[owner]

        # Instance attributes shadow the methods for this broadcaster only. (A hook in
        # the hub, letting open_stream carry an owner, would make this unnecessary.)
        patched: Any = broadcaster
        patched.subscribe = tracked_subscribe
        patched.unsubscribe = tracked_unsubscribe

    def count(self, key_id: str) -> int:
        owned = self._by_key.get(key_id)
        return len(owned) if owned is not None else 0

    def close(self, key_id: str) -> int:
        """End every stream opened with ``key_id``; how many there were."""
        owned = list(self._by_key.get(key_id, ()))
        for subscriber in owned:
            subscriber.close_code, subscriber.close_reason = 1008, "key revoked"
            self._broadcaster.unsubscribe(subscriber)
        return len(owned)
