"""The outbox: transitions and presence drained from Redis into the durable store.

Theory of operation
-------------------
The event stream *is* the outbox. A consumer group ``outbox`` on it remembers what
was delivered; an entry is acknowledged (``XACK``) only after the store committed it,
so delivery is at-least-once and a store that is down simply leaves the entries in
Redis (bounded by the stream's cap: drop-oldest, counted in
``lastseen_outbox_lost_total``) until it returns.

One instance drains at a time, holding a short lease (``SET NX PX``, renewed while
it works; any instance takes it over when it lapses, so there is no leader to elect
and nothing to configure). Draining in one place keeps appends in seq order, which
the store contract asks for. A new holder first takes over (``XAUTOCLAIM``) what the
previous holder had read but not acknowledged. Should two ever overlap (a holder
paused past its lease), appends stay exactly-once by seq: events at or below the
store's ``last_seq`` are skipped, and a batch whose first seq the store already has
is refused by the store's own seq check (under PostgreSQL's ``last_seq`` row lock),
after which this drainer re-reads ``last_seq`` and skips what is stored.

With each batch of events go the full rows of the devices they concern (new devices
are registered by their first heartbeat in Redis) and of devices whose ``last_seen``
or attributes moved without a transition (the ``dirty`` set: write-behind).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from redis import exceptions as rexc

from lastseen.errors import LastseenError
from lastseen.scaleout.codec import event_from_entry, seq_of
from lastseen.scaleout.connection import OUTAGE
from lastseen.store import Batch, DeviceRecord, EventRecord

if TYPE_CHECKING:
    from lastseen.scaleout.hub import RedisHub

log = logging.getLogger("lastseen.scaleout")

GROUP = "outbox"
#: Milliseconds a drainer's lease lasts without renewal.
LEASE_MS = 3000
#: Events per store transaction; dirty devices per flush.
BATCH = 2000
DIRTY_BATCH = 2000
#: Stream entries kept below the drained point, for resume (then the store answers).
KEEP = 100_000
#: Longest wait between store retries (doubling from 50 ms).
MAX_BACKOFF = 2.0

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Outbox:
    def __init__(self, hub: RedisHub) -> None:
        self.hub = hub
        self.name = uuid.uuid4().hex[:12]
        self._renew = hub.redis.register_script(_RENEW)
        self._release = hub.redis.register_script(_RELEASE)
        #: The newest seq known to be in the store.
        self.committed = 0
        self._group_ready = False
        self.holder = False
        self._flushed_at = 0.0

    async def run(self) -> None:
        backoff = 0.05
        while not self.hub.stopping.is_set():
            try:
                drained = await self.step()
                backoff = 0.05
                if not drained:
                    await self.hub.pause(0.1 if self.holder else LEASE_MS / 3000)
            except (*OUTAGE, rexc.RedisError) as exc:
                self.hub.metrics.redis_errors.inc(1.0, "outbox")
                log.warning("event=outbox_redis_failed reason=%s", type(exc).__name__)
                await self.hub.pause(0.2)
            except LastseenError as exc:
                # The store is down or refused: everything stays in Redis; retry.
                self.hub.metrics.outbox_failures.inc()
                log.warning("event=outbox_store_failed reason=%s", exc.code)
                self._group_ready = False
                await self.hub.pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def release(self) -> None:
        if self.holder:
            try:
                await self._release(keys=[self.hub.keys.outbox_lease], args=[self.name])
            except (*OUTAGE, rexc.RedisError):
                pass
            self.holder = False

    async def step(self) -> int:
        """Renew or take the lease; drain one batch if held. Returns rows drained."""
        hub = self.hub
        k = hub.keys
        self.holder = bool(await self._renew(keys=[k.outbox_lease], args=[self.name, LEASE_MS]))
        if not self.holder:
            return 0
        if not self._group_ready:
            self.committed = await hub.store.last_seq()
            try:
                await hub.redis.xgroup_create(
                    k.stream, GROUP, id=f"{self.committed}-0", mkstream=True
                )
            except rexc.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._group_ready = True
        entries = await self._read()
        current = int(await hub.redis.get(k.seq) or 0)
        dirty: list[str] = []
        mono = time.monotonic()
        if mono - self._flushed_at >= hub.settings.flush_interval:
            # Write-behind of last_seen/attributes: once per flush interval, like the
            # embedded hub, never per heartbeat.
            self._flushed_at = mono
            dirty = await hub.redis.spop(k.dirty, DIRTY_BATCH) or []
            if len(dirty) == DIRTY_BATCH:
                self._flushed_at = 0.0  # more waiting: take the next batch at once
        hub.outbox_backlog = max(0, current - self.committed)
        if not entries and not dirty:
            return 0
        try:
            written = await self._commit(entries, dirty)
        except BaseException:
            if dirty:
                await hub.redis.sadd(k.dirty, *dirty)
            raise
        if entries:
            await hub.redis.xack(k.stream, GROUP, *[i for i, _ in entries])
            floor = self.committed - KEEP
            if floor > 0:
                await hub.redis.xtrim(k.stream, minid=f"{floor}-0", approximate=True)
        hub.outbox_backlog = max(0, current - self.committed)
        return written

    async def _read(self) -> list[tuple[str, Any]]:
        """This consumer's unacknowledged entries first, then a dead holder's, then new."""
        r = self.hub.redis
        stream = self.hub.keys.stream
        for start in ("0", ">"):
            if start == ">":
                claimed = await r.xautoclaim(stream, GROUP, self.name, 0, "0-0", count=BATCH)
                if claimed[1]:
                    return [(i, f) for i, f in claimed[1] if f is not None]
            reply = await r.xreadgroup(GROUP, self.name, {stream: start}, count=BATCH)
            entries = _entries(reply)
            if entries:
                return entries
        return []

    async def _commit(self, entries: list[tuple[str, Any]], dirty: list[str]) -> int:
        hub = self.hub
        events: list[EventRecord] = []
        for entry_id, fields in entries:
            if not entry_id.endswith("-0"):
                continue
            seq = seq_of(entry_id)
            if seq <= self.committed:
                continue  # already in the store: at-least-once, applied once
            if (events and seq != events[-1].seq + 1) or (not events and seq != self.committed + 1):
                expected = events[-1].seq + 1 if events else self.committed + 1
                if seq > expected:
                    hub.metrics.outbox_lost.inc(float(seq - expected))
                    log.error("event=outbox_gap from=%d to=%d reason=trimmed", expected, seq - 1)
            events.append(event_from_entry(entry_id, fields)[0])
        ids = sorted({e.device_id for e in events} | set(dirty))
        upserts: list[DeviceRecord] = []
        if ids:
            records, _ = await hub.reads.records(ids)
            upserts = [r for r in records if r is not None]
        if not (events or upserts):
            return 0
        await hub.store.apply(Batch(upserts=upserts, events=events))
        if events:
            self.committed = events[-1].seq
        hub.metrics.outbox_rows.inc(float(len(events) + len(upserts)))
        return len(events) + len(upserts)


def _entries(reply: Any) -> list[tuple[str, Any]]:
    if not reply:
        return []
    items = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[str, Any]] = []
    for _, entries in items:
        for entry in entries:
            if isinstance(entry, list | tuple) and len(entry) == 2 and entry[1] is not None:
                out.append((entry[0], entry[1]))
    return out
