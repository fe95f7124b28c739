"""Group commit and write-behind: the only path from hot state to the durable store.

Requests that changed something durable (a transition, a new device, a deletion)
hand the committer the ids they touched and the events they produced, then await
its future: the answer goes out only after the commit, so an acknowledged
transition is never lost. Everything that arrives while one transaction runs goes
into the next one (group commit), which is what lets a burst of 100 000 timeouts
cost a handful of transactions rather than 100 000.

Two kinds of row write exist. A *full* row (registration, labels, profile,
attributes) encodes every column; a *presence* update (a transition, a timeout, a
heartbeat's new time) touches only the presence columns, which is what makes a
burst of 100 000 timeouts cheap to commit. Devices whose only change is their
three times (``last_seen``, ``last_own``, ``anchor``: a heartbeat of a device that
is already online) are marked seen and written every ``flush_interval`` seconds as
``Batch.seen`` rows, read straight from the hub's columns: three columns a row and
no state object per device, which is what keeps a million-device fleet's
write-behind affordable. Ones whose attributes or metrics moved are marked dirty
and written as full rows at the same moment. Either way the hot path does no
synchronous SQL write.

Rows are never copied at submit time. At commit time the committer asks the hub
for the *current* record of every touched id (or learns that it was deleted), so
the store always receives the newest state and a merge can never reorder a delete
and a re-create. Events keep their seq order. A failed transaction is retried with
backoff, with its events still unpublished, so none is lost or published early.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lastseen.errors import LastseenError
from lastseen.metrics import Counter, Histogram
from lastseen.store import Batch, DeviceRecord, EventRecord, PresenceColumns, SeenRow, Store

log = logging.getLogger("lastseen.committer")

#: ``(upserts, deletes, presence updates, seen rows)`` for full, presence-only and
#: seen-only ids, as of now (a seen id that is no longer there is left out).
Snapshot = Callable[
    [set[str], set[str], set[str]],
    tuple[list[DeviceRecord], list[str], PresenceColumns | None, list[SeenRow]],
]


@dataclass(slots=True)
class _Pending:
    ids: set[str]
    events: list[EventRecord]
    futures: list[asyncio.Future[None]]
    presence: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)


class Committer:
    def __init__(
        self,
        store: Store,
        snapshot: Snapshot,
        publish: Callable[[Sequence[EventRecord]], None],
        *,
        flush_interval: float,
        commit_seconds: Histogram,
        rows_written: Counter,
        failures: Counter,
    ) -> None:
        self._store = store
        self._snapshot = snapshot
        self._publish = publish
        self._flush_interval = flush_interval
        self._commit_seconds = commit_seconds
        self._rows_written = rows_written
        self._failures = failures
        self._pending = _Pending(set(), [], [])
        #: Ids with a status-relevant change in the batch being committed now.
        self._inflight: set[str] = set()
        self._dirty: set[str] = set()
        self._seen: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self.healthy = True

    def submit(
        self,
        ids: set[str] | Sequence[str],
        events: Sequence[EventRecord] = (),
        presence: set[str] | Sequence[str] = (),
    ) -> asyncio.Future[None]:
        """Queue a durable change: full rows for ``ids``, presence updates for
        ``presence``; the future resolves once it is committed and published."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._pending
        pending.ids.update(ids)
        pending.presence.update(presence)
        pending.events.extend(events)
        pending.futures.append(future)
        self._wake.set()
        return future

    def mark_dirty(self, device_id: str) -> None:
        """Attributes or metrics moved; write the whole row with the next flush."""
        self._dirty.add(device_id)

    def mark_seen(self, device_id: str) -> None:
        """Only the device's times moved; write those columns with the next flush."""
        self._seen.add(device_id)

    def mark_seen_many(self, device_ids: list[str]) -> None:
        """``mark_seen`` for a batch."""
        self._seen.update(device_ids)

    def unwritten(self) -> set[str]:
        """Ids whose presence or row changed since the store last saw them (queued or
        being committed now): the devices whose stored status may not be their status.
        ``last_seen``-only changes are not among them."""
        return self._pending.ids | self._pending.presence | self._inflight

    @property
    def backlog(self) -> int:
        pending = self._pending
        return len(pending.ids) + len(pending.presence) + len(self._dirty) + len(self._seen)

    async def run(self) -> None:
        """Commit until ``stop()``; then flush everything still pending and return."""
        next_flush = time.monotonic() + self._flush_interval
        while True:
            if not (self._pending.futures or self._stopping):
                timeout = max(0.0, next_flush - time.monotonic())
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
            flush = self._stopping or time.monotonic() >= next_flush
            pending, self._pending = self._pending, _Pending(set(), [], [])
            # Before the write-behind joins: its devices' stored status is current.
            inflight = pending.ids | pending.presence
            if flush:
                pending.ids |= self._dirty
                pending.seen = self._seen
                self._dirty, self._seen = set(), set()
                next_flush = time.monotonic() + self._flush_interval
            if pending.ids or pending.events or pending.presence or pending.seen:
                self._inflight = inflight
                try:
                    await self._commit(pending)
                finally:
                    self._inflight = set()
            for future in pending.futures:
                if not future.done():
                    future.set_result(None)
            if self._stopping and not (self._pending.futures or self._dirty or self._seen):
                return

    async def _commit(self, pending: _Pending) -> None:
        delay = 0.05
        # A full row already carries the presence columns, and both carry the times.
        # In place, so the cost is the size of the (small) sets taken out.
        seen_ids = pending.seen
        seen_ids -= pending.ids
        seen_ids -= pending.presence
        while True:
            upserts, deletes, presence, seen = self._snapshot(
                pending.ids, pending.presence - pending.ids, seen_ids
            )
            batch = Batch(
                upserts=upserts,
                deletes=deletes,
                events=pending.events,
                presence_columns=presence,
                seen=seen,
            )
            started = time.perf_counter()
            try:
                await self._store.apply(batch)
            except LastseenError as exc:
                self.healthy = False
                self._failures.inc()
                log.error("event=commit_failed error=%r retry_in=%.2f", exc.message, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.healthy = True
            self._commit_seconds.observe(time.perf_counter() - started)
            self._rows_written.inc(
                len(upserts) + len(deletes) + len(pending.events) + len(presence or ()) + len(seen)
            )
            if pending.events:
                try:
                    self._publish(pending.events)
                except Exception:
                    # The events are durable; a fan-out bug must not stop commits.
                    log.exception("event=publish_failed events=%d", len(pending.events))
            return

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
