"""The embedded hub: hot presence in memory, durability in the store, deadlines in buckets.

One event loop owns all device state, so every state change is atomic by
construction (no locks, no read-modify-write races between a heartbeat and a
probe: seed 001's bug cannot happen). Each change goes through the pure engine,
then either

* touches something durable (a transition, a registration, a session) and waits
  for the group commit before it is answered and published, or
* only moves ``last_seen`` (an online device beating again): no SQL write, the row
  is marked seen, and the write-behind flush writes its three times from the columns
  (``Batch.seen``).

Hot state is columnar (``hub/table.py``): a device is a number, its fields live in
arrays, and ``entries`` is a read-only mapping view over them. Deadlines are device
numbers in millisecond buckets (``hub/deadlines.py``). A heartbeat only ever moves a
device's deadline *later*, so it does not touch them: the old entry fires, the
sweeper sees the device is not due yet and adds the real deadline. Each device
therefore has at most one live deadline entry (the table's ``scheduled`` column) and
the hot path stays O(1). The sweep applies timeouts on the columns
(``hub/expiry.py``) and leaves the rarer cases to the engine.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from array import array
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, partial
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from lastseen.clock import Clock, SystemClock
from lastseen.errors import InvalidInput, NotFound, Unavailable
from lastseen.hub import heap
from lastseen.hub.broadcast import (
    DEVICE,
    RESET,
    SEEN,
    TRANSITION,
    Broadcaster,
    Message,
    StreamFilter,
    Subscriber,
    WireEvent,
)
from lastseen.hub.committer import Committer
from lastseen.hub.deadlines import Deadlines, bucket_of
from lastseen.hub.expiry import Expired, expire_many
from lastseen.hub.expiry import deadline as deadline_of
from lastseen.hub.feed import FeedItem, transition_feed
from lastseen.hub.heap import Trimmer
from lastseen.hub.instruments import HubMetrics
from lastseen.hub.rendering import event_bytes, event_tail
from lastseen.hub.table import (
    EMPTY,
    NAN,
    STATUSES,
    DeviceTable,
    Entries,
    Presence,
    Row,
    state_from,
)
from lastseen.logs import BATCH
from lastseen.presence import (
    DeviceState,
    Observation,
    Profile,
    ProfileRegistry,
    Source,
    Status,
    Transition,
    advance,
    check_observation,
    new_device,
    observe,
)
from lastseen.retention import prune_forever
from lastseen.settings import Settings
from lastseen.store import DeviceQuery, DeviceRecord, EventRecord, PresenceColumns, SeenRow, Store
from lastseen.timefmt import rfc3339
from lastseen.wire import device_json, event_json

if TYPE_CHECKING:
    from lastseen.hub.api import DeviceStatus

log = logging.getLogger("lastseen.presence")

#: What one batch item is answered with (``Hub._heartbeats``).
R = TypeVar("R")

#: Most attribute keys one device keeps (a heartbeat's attributes merge into them).
MAX_ATTRIBUTES = 256
#: Swept chunks that may wait for their commit before the sweep waits too.
_SWEEP_AHEAD = 2
DEVICE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_BEAT = Observation(Source.HEARTBEAT)
_HEARTBEAT = Source.HEARTBEAT.value


def _seen_message(
    stamps: Mapping[str, tuple[str, Mapping[str, str]]], stream_filter: StreamFilter
) -> bytes | None:
    chosen = {
        device_id: when
        for device_id, (when, labels) in stamps.items()
        if stream_filter.is_open or stream_filter.matches_device(device_id, labels)
    }
    return orjson.dumps({"type": SEEN, "devices": chosen}) if chosen else None


def _log_fields(t: Transition) -> str:
    """A transition log line's fields after device and seq (shared by a burst)."""
    return (
        f"from={t.from_status.value} to={t.to_status.value} reason={t.reason.value} "
        f"source={t.source.value} at={rfc3339(t.at)}"
    )


async def _messages(messages: list[Message]) -> AsyncIterator[Message]:
    for message in messages:
        yield message


def check_device_id(device_id: str) -> str:
    if DEVICE_ID.fullmatch(device_id) is None:
        raise InvalidInput(
            "device id must be 1-128 characters of A-Z a-z 0-9 . _ : @ -",
            code="invalid_device_id",
        )
    return device_id


def check_profile(profiles: ProfileRegistry, name: str | None) -> None:
    """Refuse a device's profile that is not configured (None keeps the current one)."""
    if name is not None and name not in profiles:
        raise InvalidInput(f"no profile called {name!r}", code="unknown_profile")


class BeatResult:
    """What a heartbeat or an observation left: the device's presence and profile.

    A refreshed device's answer is taken from the columns as a ``Presence`` tuple at
    the moment of the heartbeat; the ``DeviceState`` is built from it only when
    ``state`` is read (most answers need just ``status`` and the two times).
    """

    __slots__ = ("_presence", "_state", "device_id", "profile")

    def __init__(self, device_id: str, state: DeviceState, profile: Profile) -> None:
        self.device_id = device_id
        self.profile = profile
        self._state: DeviceState | None = state
        self._presence: Presence | None = None

    @classmethod
    def of_columns(cls, device_id: str, presence: Presence, profile: Profile) -> BeatResult:
        result = cls.__new__(cls)
        result.device_id = device_id
        result.profile = profile
        result._state = None
        result._presence = presence
        return result

    @property
    def state(self) -> DeviceState:
        state = self._state
        if state is None:
            assert self._presence is not None
            state = self._state = state_from(self._presence)
        return state

    @property
    def status(self) -> Status:
        presence = self._presence
        return self.state.status if presence is None else STATUSES[presence[0]]

    @property
    def since(self) -> float:
        presence = self._presence
        return self.state.since if presence is None else presence[1]

    @property
    def last_seen(self) -> float | None:
        presence = self._presence
        if presence is None:
            return self.state.last_seen
        last_seen = presence[2]
        return None if last_seen != last_seen else last_seen

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BeatResult):
            return NotImplemented
        return (self.device_id, self.state, self.profile) == (
            other.device_id,
            other.state,
            other.profile,
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, and not frozen

    def __repr__(self) -> str:
        return f"BeatResult({self.device_id!r}, {self.state!r}, {self.profile!r})"


@dataclass(slots=True)
class _Changes:
    """What one operation touched; becomes one commit. ``ids`` need full rows,
    ``presence`` only their presence columns."""

    ids: set[str] = field(default_factory=set)
    events: list[EventRecord] = field(default_factory=list)
    presence: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.ids or self.events or self.presence)


class Hub:
    """Presence for the whole fleet in one process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock | None = None,
        *,
        serving: asyncio.Event | None = None,
    ) -> None:
        """``serving``, when given, holds the deadline timer back until it is set:
        ``lastseen serve`` sets it once its server listens, so the deadlines that
        passed while the hub was down (a million at a restart) are swept only after
        the hub answers requests, never in the way of the server's own start."""
        self.settings = settings
        self.profiles = settings.profiles
        self.store = store
        self.clock = clock or SystemClock()
        #: Every device's hot state, in columns (see ``hub/table.py``).
        self.table = DeviceTable()
        #: A read-only ``Mapping`` of device id → ``Row`` over the table.
        self.entries = Entries(self.table)
        self.seq = 0
        self.started_at = time.time()
        self.status_counts = dict.fromkeys(Status, 0)
        self.metrics = HubMetrics(self)
        self.broadcaster = Broadcaster(
            replay_size=settings.replay_buffer,
            queue_size=settings.subscriber_queue,
            on_overflow=self.metrics.subscriber_resets.inc,
        )
        self.committer = Committer(
            store,
            self._snapshot,
            self._publish,
            flush_interval=settings.flush_interval,
            commit_seconds=self.metrics.commit_seconds,
            rows_written=self.metrics.rows_written,
            failures=self.metrics.commit_failures,
        )
        self._deadlines = Deadlines()
        self._timer_wake = asyncio.Event()
        self._serving = serving
        self._seen: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.stopped = False
        #: The newest seq published (and so committed): the end of any backfill.
        self.published_seq = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, timers: bool = True) -> None:
        """Open the store, rebuild hot state and the deadlines, run.

        Device rows are read from the store as raw columns and decoded straight into
        the table (no record or state object per device). Deadlines that passed while
        the hub was down are in the deadline buckets like any other and the timer
        fires them at once (once ``serving`` is set, if the hub was given one), in
        chunks, stamped at their deadlines: exactly as if the hub had been running. The
        hub serves meanwhile, and reads show those devices as the engine judges them
        now (see ``view``), so a large fleet does not keep the hub unavailable while
        its backlog is committed.

        ``timers=False`` starts only the committer: tests then drive time themselves
        with ``sweep(now)`` and a manual clock.
        """
        await self.store.open()
        self.seq = self.published_seq = await self.store.last_seq()
        now = self.clock.now()
        table = self.table
        profile_of = cache(self._profile_or_default)  # one warning per unknown profile
        # The load allocates millions of objects that form no cycles: without a pause
        # the cyclic collector would rescan the growing heap again and again.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            async for rows in self.store.device_rows():
                table.load(rows, profile_of)
                del rows  # a batch's row objects go before the next one arrives
        finally:
            if was_enabled:
                gc.enable()
        counts = self.status_counts
        for status, count in zip(STATUSES, table.status_histogram(), strict=True):
            counts[status] += count
        overdue = self._arm_all(now)
        # Whatever the load allocated lives as long as the process: move it out of
        # the cyclic collector's sight so full collections stay short.
        gc.collect()
        gc.freeze()
        # The rows read are freed now; give their pages back (hub/heap.py).
        heap.release()
        log.info("event=loaded devices=%d overdue=%d seq=%d", len(table), overdue, self.seq)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.committer.run(), name="committer")]
        if timers:
            self._tasks += [
                loop.create_task(self._timer(), name="deadline-timer"),
                loop.create_task(self._seen_ticker(), name="seen-ticker"),
                loop.create_task(self._heap_trimmer(), name="heap-trimmer"),
                loop.create_task(
                    prune_forever(
                        "events",
                        self.store.prune_events,
                        self.settings.event_retention,
                        self.clock,
                    ),
                    name="pruner",
                ),
            ]

    def _arm_all(self, now: float) -> int:
        """Schedule every loaded device's next deadline; how many are overdue."""
        table = self.table
        scheduled = table.scheduled
        buckets: dict[int, array[int]] = {}
        overdue = 0
        for n, device_id in enumerate(table.ids):
            if device_id is None:
                continue
            due = deadline_of(table, n)
            if due != due:
                continue
            scheduled[n] = due
            overdue += due <= now
            key = bucket_of(due)
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = array("I", (n,))
            else:
                bucket.append(n)
        for key, numbers in buckets.items():
            self._deadlines.extend(key, numbers)
        return overdue

    async def stop(self) -> None:
        """Flush write-behind and pending commits, close streams, close the store."""
        if self.stopped:
            return
        self.stopped = True
        for task in self._tasks[1:]:
            task.cancel()
        self.committer.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.broadcaster.close_all()
        await self.store.close()

    def _profile_or_default(self, name: str) -> Profile:
        if name in self.profiles:
            return self.profiles.get(name)
        log.warning("event=unknown_profile profile=%s fallback=default", name)
        return self.profiles.default

    # ------------------------------------------------------------------ state changes

    def _emit(self, device_id: str, transitions: Sequence[Transition], changes: _Changes) -> None:
        counts = self.status_counts
        events = changes.events
        inc = self.metrics.transitions.inc
        for transition in transitions:
            self.seq += 1
            events.append(EventRecord(self.seq, device_id, transition))
            counts[transition.from_status] -= 1
            counts[transition.to_status] += 1
            inc(1.0, transition.from_status.value, transition.to_status.value)

    def _emit_expired(self, expired: Expired, changes: _Changes) -> None:
        """``_emit`` for the transitions of a swept chunk, counted per status pair."""
        ids = self.table.ids
        events = changes.events
        presence = changes.presence
        seq = self.seq
        for n, transition in zip(expired.owners, expired.transitions, strict=True):
            seq += 1
            device_id: str = ids[n]  # type: ignore[assignment]
            events.append(EventRecord(seq, device_id, transition))
            presence.add(device_id)
        self.seq = seq
        counts = self.status_counts
        inc = self.metrics.transitions.inc
        for (before, after), count in expired.moves.items():
            if count:
                counts[STATUSES[before]] -= count
                counts[STATUSES[after]] += count
                inc(float(count), STATUSES[before].value, STATUSES[after].value)

    def _reschedule(self, n: int) -> None:
        table = self.table
        deadline = deadline_of(table, n)
        if deadline != deadline:
            return
        scheduled = table.scheduled[n]
        # An existing earlier entry will fire first and re-check; never add a second.
        if scheduled <= deadline:
            return
        table.scheduled[n] = deadline
        if self._deadlines.add(deadline, n):
            self._timer_wake.set()

    def _advance(self, device_id: str, n: int, now: float, changes: _Changes) -> None:
        """Apply device ``n``'s due deadlines; it has no live deadline entry."""
        table = self.table
        expired = expire_many(table, [n], now)
        if not expired.slow:
            self._emit_expired(expired, changes)
            self._rearm(expired)
            return
        step = advance(table.state(n), table.profile_of(n), now)
        table.set_state(n, step.state)
        if step.changed:
            changes.presence.add(device_id)
            self._emit(device_id, step.transitions, changes)
        self._reschedule(n)

    def _rearm(self, expired: Expired) -> None:
        woken = False
        for key, numbers in expired.rearm.items():
            woken = self._deadlines.extend(key, numbers) or woken
        if woken:
            self._timer_wake.set()

    def _add(self, device_id: str, now: float) -> int:
        n = self.table.add(device_id, new_device(now), self.profiles.default, now, now)
        self.status_counts[Status.UNKNOWN] += 1
        return n

    def _observe(
        self,
        device_id: str,
        observation: Observation,
        now: float,
        changes: _Changes,
        *,
        attributes: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        register: bool = True,
    ) -> BeatResult:
        table = self.table
        n = table.index.get(device_id)
        if n is None:
            if not register:
                raise NotFound(f"no device {device_id!r}")
            n = self._add(device_id, now)
            changes.ids.add(device_id)
            # No "device created" message: the unknown → online transition that
            # follows in this same commit tells subscribers everything they need.
        profile = table.profile_of(n)
        step = observe(table.state(n), observation, profile, now)
        table.set_state(n, step.state)
        if attributes:
            table.attributes[n] = {**table.attributes.get(n, EMPTY), **attributes}
        if metrics:
            table.metrics[n] = dict(metrics)
        if step.changed:
            changes.presence.add(device_id)
            self._emit(device_id, step.transitions, changes)
        if device_id in changes.ids:
            pass  # a full row is part of this operation's commit already
        elif attributes or metrics:
            self.committer.mark_dirty(device_id)
        elif not step.changed:
            self.committer.mark_seen(device_id)
        if step.state.last_seen == now:
            self._seen.add(device_id)
        self._reschedule(n)
        return BeatResult(device_id, step.state, profile)

    def _check_attributes(self, device_id: str, attributes: Mapping[str, Any] | None) -> None:
        """Attributes merge into the stored ones; refuse a merge past the cap, so no
        device can grow its state without bound 256 keys at a time."""
        if not attributes:
            return
        n = self.table.index.get(device_id)
        current = EMPTY if n is None else self.table.attributes.get(n, EMPTY)
        if len(current) + len(attributes) <= MAX_ATTRIBUTES:
            return
        if len(current.keys() | attributes.keys()) > MAX_ATTRIBUTES:
            raise InvalidInput(
                f"device {device_id!r} would have more than {MAX_ATTRIBUTES} attributes",
                code="too_many_attributes",
            )

    async def _commit(self, changes: _Changes, timeout: float = 5.0) -> None:
        if not changes:
            return
        future = self.committer.submit(changes.ids, changes.events, changes.presence)
        done, _ = await asyncio.wait({future}, timeout=timeout)
        if not done:
            # The change stays queued and will be committed and published; this
            # caller just cannot be told it is durable yet.
            raise Unavailable("the store did not confirm the write in time", code="store_busy")

    async def heartbeat(
        self,
        device_id: str,
        *,
        source: Source = Source.HEARTBEAT,
        attributes: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        register: bool = True,
    ) -> BeatResult:
        """A sign of life from the device itself."""
        now = self.clock.now()
        if source is Source.HEARTBEAT and not (attributes or metrics):
            table = self.table
            n = table.index.get(device_id)
            # The hot path on the columns (``DeviceTable.refresh``).
            if n is not None and table.refresh(n, now):
                self.committer.mark_seen(device_id)
                self._seen.add(device_id)
                self.metrics.heartbeats.inc(1.0, _HEARTBEAT)
                return BeatResult.of_columns(device_id, table.presence(n), table.profile_of(n))
        self._check_attributes(device_id, attributes)
        changes = _Changes()
        result = self._observe(
            device_id,
            Observation(source),
            now,
            changes,
            attributes=attributes,
            metrics=metrics,
            register=register,
        )
        self.metrics.heartbeats.inc(1.0, source.value)
        await self._commit(changes)
        return result

    async def heartbeats(
        self, items: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]]
    ) -> list[BeatResult | InvalidInput]:
        """Many heartbeats, one commit. An item that is refused (its attributes would
        overflow the device's) changes nothing and comes back as its error."""
        table = self.table
        return await self._heartbeats(
            items,
            lambda device_id, n: BeatResult.of_columns(
                device_id, table.presence(n), table.profile_of(n)
            ),
            _itself,
        )

    async def heartbeat_statuses(
        self, items: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]]
    ) -> list[Status | InvalidInput]:
        """``heartbeats`` answered with each device's status alone. A device the hot
        path refreshed is online by construction, so its columns are not read again:
        with 10^6 devices each column read is a cache miss."""
        return await self._heartbeats(items, _online, _status_of)

    async def _heartbeats(
        self,
        items: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]],
        refreshed: Callable[[str, int], R],
        observed: Callable[[BeatResult], R],
    ) -> list[R | InvalidInput]:
        now = self.clock.now()
        changes = _Changes()
        results: list[R | InvalidInput] = []
        applied = 0
        table = self.table
        index = table.index
        seen: list[str] = []
        for device_id, attributes, metrics in items:
            if not (attributes or metrics):
                n = index.get(device_id)
                if n is not None and table.refresh(n, now):
                    seen.append(device_id)
                    results.append(refreshed(device_id, n))
                    continue
            try:
                self._check_attributes(device_id, attributes)
            except InvalidInput as exc:
                results.append(exc)
                continue
            results.append(
                observed(
                    self._observe(
                        device_id, _BEAT, now, changes, attributes=attributes, metrics=metrics
                    )
                )
            )
            applied += 1
        self.committer.mark_seen_many(seen)
        self._seen.update(seen)
        self.metrics.heartbeats.inc(float(applied + len(seen)), _HEARTBEAT)
        await self._commit(changes)
        return results

    async def apply(
        self, device_id: str, observation: Observation, *, register: bool = False
    ) -> BeatResult:
        """Any observation (connect, disconnect, probe, manual) for one device."""
        check_observation(observation)  # before registering: bad input changes nothing
        now = self.clock.now()
        changes = _Changes()
        result = self._observe(device_id, observation, now, changes, register=register)
        await self._commit(changes)
        return result

    async def put_device(
        self,
        device_id: str,
        *,
        profile: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> tuple[DeviceRecord, bool]:
        """Register or update a device's profile and labels; True if it was created."""
        check_profile(self.profiles, profile)
        now = self.clock.now()
        changes = _Changes()
        table = self.table
        n = table.index.get(device_id)
        created = n is None
        if n is None:
            n = self._add(device_id, now)
        if profile is not None and profile != table.profile_of(n).name:
            table.profile[n] = table.profile_code(self.profiles.get(profile))
            # A different profile means different deadlines: apply any now due, and
            # schedule the new one (it may be earlier than the one scheduled).
            table.scheduled[n] = NAN
            self._advance(device_id, n, now, changes)
        if labels is not None:
            table.set_side(table.labels, n, dict(labels))
        table.updated_at[n] = now
        changes.ids.add(device_id)
        self._publish_device("created" if created else "updated", device_id, n)
        await self._commit(changes)
        return self._record(device_id, n), created

    async def delete_device(self, device_id: str) -> None:
        table = self.table
        n = table.index.get(device_id)
        if n is None:
            raise NotFound(f"no device {device_id!r}")
        self.status_counts[STATUSES[table.status[n]]] -= 1
        table.remove(device_id)
        self._seen.discard(device_id)
        self._publish_device("deleted", device_id, None)
        await self._commit(_Changes(ids={device_id}))

    # ------------------------------------------------------------------ timeouts

    def next_timer(self) -> float | None:
        return self._deadlines.first()

    async def sweep(self, now: float | None = None) -> int:
        """Fire every deadline due at ``now`` (default: the clock); returns transitions.

        Work is cut into chunks that are handed to the committer without waiting for
        them, so a burst of expiries is pipelined into a few large transactions while
        the loop still serves requests between chunks. At most ``_SWEEP_AHEAD`` chunks
        wait for their commit: a sweep of millions of overdue deadlines (a restart)
        never runs so far ahead of the store that one commit's snapshot and
        publication become seconds of work on the loop, or hold the whole backlog
        in memory.
        """
        table = self.table
        ids = table.ids
        scheduled = table.scheduled
        deadlines = self._deadlines
        fired = 0
        chunk = self.settings.sweep_chunk
        waiting: deque[asyncio.Future[None]] = deque()
        while True:
            now = self.clock.now() if now is None else now
            due = deadlines.take(now, chunk, scheduled)
            changes = _Changes()
            expired = expire_many(table, due, now)
            self._emit_expired(expired, changes)
            self._rearm(expired)
            for n in expired.slow:
                scheduled[n] = NAN
                self._advance(ids[n], n, now, changes)  # type: ignore[arg-type]
            fired += len(changes.events)
            if changes:
                waiting.append(self.committer.submit(changes.ids, changes.events, changes.presence))
            if len(due) < chunk:
                break
            while waiting and waiting[0].done():
                waiting.popleft()
            if len(waiting) > _SWEEP_AHEAD:
                # ``wait`` rather than ``await``: cancelling the sweep must not cancel
                # the commit's future.
                await asyncio.wait({waiting.popleft()})
            else:
                await asyncio.sleep(0)
        return fired

    async def _timer(self) -> None:
        if self._serving is not None:
            await self._serving.wait()
        while True:
            deadline = self.next_timer()
            self._timer_wake.clear()
            if deadline is not None:
                delay = deadline - self.clock.now()
                if delay <= 0:
                    await self.sweep()
                    continue
            else:
                delay = None
            try:
                async with asyncio.timeout(delay):
                    await self._timer_wake.wait()
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ publishing

    def _labels(self, device_id: str) -> Mapping[str, str]:
        n = self.table.index.get(device_id)
        return EMPTY if n is None else self.table.labels.get(n, EMPTY)

    def _publish(self, events: Sequence[EventRecord]) -> None:
        """Log, measure and fan out committed events (called by the committer)."""
        now = self.clock.now()
        wire = []
        logging_on = log.isEnabledFor(logging.INFO)
        lines: list[str] = []
        lag = self.metrics.timeout_lag
        index = self.table.index
        labels = self.table.labels
        # A burst shares Transition objects (hub/expiry.py): render each one's part
        # of the event JSON (``event_bytes``) and of its log line once, and observe
        # its timeout lag once with a count. Keyed by identity: ``events`` keeps every
        # transition alive meanwhile, so no id is reused.
        shared: dict[int, list[Any]] = {}
        for event in events:
            transition = event.transition
            device_id = event.device_id
            seq = event.seq
            found = shared.get(id(transition))
            if found is None:
                found = shared[id(transition)] = [
                    transition,
                    event_tail(transition),
                    _log_fields(transition) if logging_on else "",
                    0,
                ]
            found[3] += 1
            if logging_on:
                lines.append(f"event=transition device={device_id} seq={seq} {found[2]}")
            n = index.get(device_id) if labels else None
            wire.append(
                WireEvent(
                    seq,
                    device_id,
                    transition.from_status,
                    transition.to_status,
                    EMPTY if n is None else labels.get(n, EMPTY),
                    event_bytes(seq, device_id, found[1]),
                )
            )
        timeout = Source.TIMEOUT
        for transition, _, _, times in shared.values():
            if transition.source is timeout:
                lag.observe(max(0.0, now - transition.at), times)
        # One log record per commit, rendered as one line per transition: the
        # per-call cost of logging would otherwise dominate a burst of timeouts.
        if lines:
            log.info("", extra={BATCH: lines})
        if events:
            self.published_seq = events[-1].seq
        self.broadcaster.publish(wire)

    def _publish_device(self, action: str, device_id: str, n: int | None) -> None:
        if not self.broadcaster.subscribers:
            return
        body: dict[str, Any] = {"type": DEVICE, "action": action, "device_id": device_id}
        if n is not None:
            body["device"] = device_json(self._record(device_id, n), self.table.profile_of(n))
        raw = orjson.dumps(body)
        labels = EMPTY if n is None else self.table.labels.get(n, EMPTY)

        def build(stream_filter: StreamFilter) -> bytes | None:
            return raw if stream_filter.matches_device(device_id, labels) else None

        self.broadcaster.publish_message(DEVICE, build)

    async def _seen_ticker(self) -> None:
        """Coalesced "seen" updates: at most one message per second per subscriber."""
        while True:
            await asyncio.sleep(1.0)
            if not self._seen:
                continue
            seen, self._seen = self._seen, set()
            if not self.broadcaster.subscribers:
                continue
            table = self.table
            index = table.index
            last_seen = table.last_seen
            labels = table.labels
            stamps: dict[str, tuple[str, Mapping[str, str]]] = {}
            for device_id in seen:
                n = index.get(device_id)
                if n is not None and last_seen[n] == last_seen[n]:
                    stamps[device_id] = (rfc3339(last_seen[n]), labels.get(n, EMPTY))

            self.broadcaster.publish_message(SEEN, partial(_seen_message, stamps))

    async def _heap_trimmer(self) -> None:
        """Once a second, return freed heap pages to the OS if enough rows were
        written since the last time (hub/heap.py); in a thread, off the loop."""
        trimmer = Trimmer()
        written = self.metrics.rows_written
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            if trimmer.due(written.get()):
                await loop.run_in_executor(None, heap.release)

    # ------------------------------------------------------------------ reads

    def _record(self, device_id: str, n: int) -> DeviceRecord:
        table = self.table
        return DeviceRecord(
            id=device_id,
            profile=table.profile_of(n).name,
            state=table.state(n),
            labels=table.labels.get(n, EMPTY),
            attributes=table.attributes.get(n, EMPTY),
            metrics=table.metrics.get(n, EMPTY),
            created_at=table.created_at[n],
            updated_at=table.updated_at[n],
        )

    def record(self, device_id: str, entry: Row | None = None) -> DeviceRecord:
        """The device's hot state as a record (``entry``, an ``entries`` row, is
        accepted for compatibility and not needed)."""
        return self._record(device_id, self.table.index[device_id])

    def view(self, device_id: str, n: int, now: float) -> DeviceRecord:
        """Device number ``n`` as a reader should see it at ``now``.

        Normally that is the hot state. A device whose deadline has passed but which
        the timer has not swept yet (the few milliseconds between a deadline and its
        sweep, or the backlog right after a restart) is shown as the engine judges it
        now; its transitions are published, with their seqs, when the sweep reaches it.
        """
        record = self._record(device_id, n)
        if self.table.scheduled[n] <= now:
            state = advance(record.state, self.table.profile_of(n), now).state
            record = replace(record, state=state)
        return record

    def _snapshot(
        self, ids: set[str], presence_ids: set[str], seen_ids: set[str]
    ) -> tuple[list[DeviceRecord], list[str], PresenceColumns | None, list[SeenRow]]:
        table = self.table
        index = table.index
        upserts = []
        deletes = []
        for device_id in ids:
            n = index.get(device_id)
            if n is None:
                deletes.append(device_id)
            else:
                upserts.append(self._record(device_id, n))
        present = []
        numbers = []
        for device_id in presence_ids:
            n = index.get(device_id)
            if n is not None:
                present.append(device_id)
                numbers.append(n)
        presence = table.presence_columns(present, numbers) if numbers else None
        # The three times straight from their columns (NaN stands for None, as
        # ``SeenRow`` allows), in id order for the store's B-tree walk.
        last_seen, last_own, anchor = table.last_seen, table.last_own, table.anchor
        seen: list[SeenRow] = [
            (device_id, last_seen[n], last_own[n], anchor[n])
            for device_id in sorted(seen_ids)
            if (n := index.get(device_id)) is not None
        ]
        return upserts, deletes, presence, seen

    def get(self, device_id: str) -> tuple[DeviceRecord, Profile]:
        n = self.table.index.get(device_id)
        if n is None:
            raise NotFound(f"no device {device_id!r}")
        return self.view(device_id, n, self.clock.now()), self.table.profile_of(n)

    async def list_devices(
        self, query: DeviceQuery
    ) -> tuple[list[tuple[DeviceRecord, Profile]], str | None, int]:
        """A page of devices (current state), the next cursor, and the seq it reflects.

        The store orders and filters ids; presence comes from memory. A device whose
        status changed after its last commit is checked against the filter again, and
        with a status filter the devices whose stored status may be behind (a change
        not yet committed, a deadline not yet swept: ``_status_moved``) are judged here
        and merged in, so ``?status=stale`` never misses a device the hub calls stale.
        """
        rows = await self.store.list_devices(query)
        seq = self.seq
        now = self.clock.now()
        table = self.table
        index = table.index
        found: dict[str, tuple[DeviceRecord, Profile]] = {}
        for row in rows:
            n = index.get(row.id)
            if n is None:
                continue
            record = self.view(row.id, n, now)
            if query.status is not None and record.state.status is not query.status:
                continue
            found[row.id] = (record, table.profile_of(n))
        full = len(rows) == query.limit
        if query.status is not None:
            # A full page covers ids up to its last row; later ones are the next page's.
            bound = rows[-1].id if full else None
            for device_id in self._status_moved(now):
                if (
                    device_id in found
                    or (query.after is not None and device_id <= query.after)
                    or (bound is not None and device_id > bound)
                    or (n := index.get(device_id)) is None
                    or (query.profile is not None and table.profile_of(n).name != query.profile)
                    or (
                        query.label is not None
                        and table.labels.get(n, EMPTY).get(query.label[0]) != query.label[1]
                    )
                ):
                    continue
                record = self.view(device_id, n, now)
                if record.state.status is query.status:
                    found[device_id] = (record, table.profile_of(n))
        page = [found[device_id] for device_id in sorted(found)]
        if len(page) > query.limit:
            del page[query.limit :]
            return page, page[-1][0].id, seq
        return page, rows[-1].id if full else None, seq

    def _status_moved(self, now: float) -> set[str]:
        """Ids whose stored status may not be their status at ``now``: changed but not
        yet committed, or due but not yet swept."""
        ids = self.committer.unwritten()
        names = self.table.ids
        for n in self._deadlines.due(now, self.table.scheduled):
            device_id = names[n]
            if device_id is not None:
                ids.add(device_id)
        return ids

    # ------------------------------------------------------------------ streams

    async def open_stream(
        self, stream_filter: StreamFilter, after: int | None, *, tap: bool = False
    ) -> tuple[Subscriber, AsyncIterator[Message]]:
        """Subscribe, and say what a resuming subscriber missed.

        Subscribing first means nothing published meanwhile is lost. Everything up to
        ``published_seq`` is committed, so the backfill covers ``(after,
        published_seq]`` from the in-memory ring or, page by page, from the store;
        ``skip_through`` drops live copies of what the backfill covers. The backfill is
        an iterator so a subscriber resuming far back costs one page of memory at a
        time, never the whole history. It yields a single ``reset`` when the history
        needed is gone (or the seq is from the future). ``tap``: an in-process consumer
        of transitions only (see ``Broadcaster.taps``).
        """
        broadcaster = self.broadcaster
        subscriber = (broadcaster.tap if tap else broadcaster.subscribe)(stream_filter)
        if after is None:
            # Consistent with a snapshot of memory taken now (in-flight included).
            subscriber.skip_through = self.seq
            return subscriber, _messages([])
        upto = self.published_seq
        subscriber.skip_through = max(after, upto)
        if after > self.seq:
            subscriber.skip_through = self.seq
            return subscriber, _messages([self._reset("unknown_seq", self.seq)])
        ring = self.broadcaster.replay_after(after)
        if ring is not None:
            matching = [(TRANSITION, e.seq, e.json) for e in ring if stream_filter.matches(e)]
            return subscriber, _messages(matching)
        if after + 1 < await self.store.first_seq():
            subscriber.skip_through = self.seq
            return subscriber, _messages([self._reset("history_expired", self.seq)])
        return subscriber, self._backfill(stream_filter, after, upto)

    async def _backfill(
        self, stream_filter: StreamFilter, after: int, upto: int
    ) -> AsyncIterator[Message]:
        cursor = after
        while cursor < upto:
            events = await self.store.events(cursor, 500)
            for event in events:
                if event.seq > upto:
                    return
                transition = event.transition
                wire = WireEvent(
                    event.seq,
                    event.device_id,
                    transition.from_status,
                    transition.to_status,
                    self._labels(event.device_id),
                    b"",
                )
                if stream_filter.matches(wire):
                    body = orjson.dumps(event_json(event.seq, event.device_id, transition))
                    yield (TRANSITION, event.seq, body)
            if not events:
                return
            cursor = events[-1].seq

    @staticmethod
    def _reset(reason: str, seq: int) -> Message:
        return (RESET, seq, orjson.dumps({"type": RESET, "reason": reason, "seq": seq}))

    def snapshot(self, stream_filter: StreamFilter) -> tuple[int, list[dict[str, Any]]]:
        """Every device matching the filter, with the seq the snapshot is consistent with."""
        devices = []
        statuses = stream_filter.statuses
        now = self.clock.now()
        table = self.table
        labels = table.labels
        for device_id, n in table.index.items():
            if not stream_filter.matches_device(device_id, labels.get(n, EMPTY)):
                continue
            record = self.view(device_id, n, now)
            if statuses and record.state.status not in statuses:
                continue
            devices.append(device_json(record, table.profile_of(n)))
        return self.seq, devices

    # ------------------------------------------------------------------ HubAPI (hub/api.py)

    async def read_device(self, device_id: str) -> tuple[DeviceRecord, Profile]:
        return self.get(device_id)

    async def knows(self, device_id: str) -> bool:
        return device_id in self.table.index

    async def profile_of(self, device_id: str) -> Profile | None:
        n = self.table.index.get(device_id)
        return None if n is None else self.table.profile_of(n)

    async def device_count(self) -> int:
        return len(self.table)

    async def current_seq(self) -> int:
        return self.seq

    async def ready(self) -> str | None:
        return None if self.committer.healthy else "store"

    async def read_snapshot(self, stream_filter: StreamFilter) -> tuple[int, list[dict[str, Any]]]:
        return self.snapshot(stream_filter)

    async def read_statuses(
        self, statuses: Collection[Status], ids: Collection[str] = ()
    ) -> tuple[int, list[DeviceStatus]]:
        # The columns as the assigned transitions left them (no judging at now): the
        # sweep's transitions come after ``self.seq``. Synchronous, so consistent.
        table = self.table
        codes = {STATUSES.index(status) for status in statuses}
        numbers = table.with_status(codes)
        index = table.index
        numbers += [
            n for n in map(index.get, ids) if n is not None and table.status[n] not in codes
        ]
        names = [profile.name for profile in table.profiles]
        device_ids, labels, profile, status, since = (
            table.ids, table.labels, table.profile, table.status, table.since
        )  # fmt: skip
        return self.seq, [
            (device_id, labels.get(n, EMPTY), names[profile[n]], STATUSES[status[n]], since[n])
            for n in numbers
            if (device_id := device_ids[n]) is not None  # always: numbers are of devices
        ]

    def transitions(self, after: int) -> AsyncGenerator[list[FeedItem], None]:
        """Every transition with seq > ``after``, then live, in batches (hub/feed.py)."""

        async def open_tap(position: int) -> tuple[Subscriber, AsyncIterator[Message]]:
            return await self.open_stream(StreamFilter(), position, tap=True)

        return transition_feed(open_tap, self.broadcaster, after, lambda: self.stopped)

    async def announce(
        self, kind: str, device_id: str, labels: Mapping[str, str], body: bytes
    ) -> None:
        """A message about one device (an alert) to the matching stream subscribers."""
        if self.broadcaster.subscribers:
            self.broadcaster.publish_message(
                kind, lambda f: body if f.matches_device(device_id, labels) else None
            )


def _itself(result: BeatResult) -> BeatResult:
    return result


def _status_of(result: BeatResult) -> Status:
    return result.status


def _online(_device_id: str, _n: int) -> Status:
    return Status.ONLINE
