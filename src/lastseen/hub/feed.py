"""The transition feed: every transition after a seq, then live, for in-process consumers.

``HubAPI.transitions(after)`` is how the notifier (and anything else that must see
every transition exactly in seq order, not just what a browser is shown) reads a
hub without knowing which hub it is. Both hubs build it from the pieces their
streams already have: a *tap* on the broadcaster (transitions only, never counted
as a stream subscriber) and the backfill of ``open_stream`` (memory ring, then the
Redis stream in scale-out, then the durable store).

Theory of operation: the feed keeps its own position, the seq of the last
transition it yielded. When its tap falls too far behind (the broadcaster resets a
slow subscriber) or is closed, it simply opens again from that position: a consumer
never sees that. Only history that is really gone reaches the consumer, as a
``FeedReset`` naming the seq the feed goes on after. Items come in batches (what
was there at once), so a consumer can write each batch in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lastseen.hub.broadcast import RESET, TRANSITION, Broadcaster, Message, Subscriber
from lastseen.presence import Status
from lastseen.timefmt import parse_rfc3339

#: Items yielded at most per batch (bounds one consumer transaction).
BATCH = 500
#: Seconds between re-opens when the hub refuses (a store or Redis outage).
RETRY = 0.2

_STATUSES = {s.value: s for s in Status}
log = logging.getLogger("lastseen.hub")


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One committed transition; ``body`` is its JSON object as ``/v1/events`` has it."""

    seq: int
    device_id: str
    from_status: Status
    to_status: Status
    at: float
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FeedReset:
    """Transitions up to ``seq`` can no longer be read (``reason``: ``history_expired``
    or ``unknown_seq``); the feed goes on after ``seq``."""

    seq: int
    reason: str


FeedItem = FeedEvent | FeedReset

#: Opens a tap after a seq: the subscriber and the backfill it missed.
OpenTap = Callable[[int], Awaitable[tuple[Subscriber, AsyncIterator[Message]]]]


def _item(message: Message) -> FeedItem | None:
    kind, seq, raw = message
    body = orjson.loads(raw)
    if kind == RESET:
        if body.get("reason") == "slow":
            return None  # our own tap fell behind: the feed re-opens, nothing is lost
        return FeedReset(int(body.get("seq") or 0), str(body.get("reason")))
    if kind != TRANSITION:
        return None
    body.pop("type", None)
    return FeedEvent(
        seq,
        body["device_id"],
        _STATUSES[body["from"]],
        _STATUSES[body["to"]],
        parse_rfc3339(body["at"]),
        body,
    )


async def transition_feed(
    open_tap: OpenTap,
    broadcaster: Broadcaster,
    after: int,
    stopped: Callable[[], bool],
    on_error: Callable[[Exception], None] = lambda exc: None,
) -> AsyncGenerator[list[FeedItem], None]:
    """Batches of transitions with seq > ``after``, in seq order, without end (until
    ``stopped()``). Shared by both hubs' ``transitions``."""
    position = after
    while not stopped():
        try:
            subscriber, backlog = await open_tap(position)
        except Exception as exc:  # an outage of the hub's backing service: retry
            log.warning("event=feed_failed reason=%s position=%d", type(exc).__name__, position)
            on_error(exc)
            await asyncio.sleep(RETRY)
            continue
        try:
            batch: list[FeedItem] = []
            async for message in backlog:
                item = _item(message)
                if item is not None:
                    batch.append(item)
                if len(batch) >= BATCH:
                    position = _position(batch, position)
                    yield batch
                    batch = []
            if batch:
                position = _position(batch, position)
                yield batch
            while True:
                first = await subscriber.get()
                if first is None:
                    break  # closed (slow, or the hub is stopping): re-open from position
                messages = [first, *subscriber.drain(BATCH - 1)]
                batch = [i for m in messages if (i := _item(m)) is not None]
                # A live copy at or below the position was already yielded.
                batch = [i for i in batch if isinstance(i, FeedReset) or i.seq > position]
                if batch:
                    position = _position(batch, position)
                    yield batch
        except Exception as exc:  # the backfill's store or Redis failed: re-open
            log.warning("event=feed_failed reason=%s position=%d", type(exc).__name__, position)
            on_error(exc)
            await asyncio.sleep(RETRY)
        finally:
            broadcaster.unsubscribe(subscriber)


def _position(batch: list[FeedItem], position: int) -> int:
    last = batch[-1]
    return last.seq if isinstance(last, FeedReset) else max(position, last.seq)
