"""The embedded hub: hot presence in memory, durability in the store, deadlines on a heap.

One event loop owns all device state, so every state change is atomic by
construction (no locks, no read-modify-write races between a heartbeat and a
probe: seed 001's bug cannot happen). Each change goes through the pure engine,
then either

* touches something durable (a transition, a registration, a session) and waits
  for the group commit before it is answered and published, or
* only moves ``last_seen`` (an online device beating again): no SQL write, the row
  is marked dirty for the write-behind flush.

Deadlines live in a heap of ``(deadline, device_id)``. A heartbeat only ever moves a
device's deadline *later*, so it does not touch the heap: the old entry fires, the
sweeper sees the device is not due yet and pushes the real deadline. Each device
therefore has at most one live heap entry (``Entry.scheduled``) and the hot path
stays O(1).
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from types import MappingProxyType
from typing import Any

import orjson

from lastseen.clock import Clock, SystemClock
from lastseen.errors import InvalidInput, NotFound, Unavailable
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
from lastseen.hub.feed import FeedItem, transition_feed
from lastseen.hub.instruments import HubMetrics
from lastseen.logs import BATCH
from lastseen.presence import (
    DeviceState,
    Observation,
    Profile,
    Source,
    Status,
    Transition,
    advance,
    new_device,
    next_deadline,
    observe,
)
from lastseen.retention import prune_forever
from lastseen.settings import Settings
from lastseen.store import DeviceQuery, DeviceRecord, EventRecord, PresenceUpdate, Store
from lastseen.timefmt import rfc3339
from lastseen.wire import compact, device_json, event_json

log = logging.getLogger("lastseen.presence")

#: Most attribute keys one device keeps (a heartbeat's attributes merge into them).
MAX_ATTRIBUTES = 256
DEVICE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_EMPTY: Mapping[str, Any] = MappingProxyType({})
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


def _log_line(event: EventRecord) -> str:
    t = event.transition
    return (
        f"event=transition device={event.device_id} from={t.from_status.value} "
        f"to={t.to_status.value} reason={t.reason.value} source={t.source.value} "
        f"seq={event.seq} at={rfc3339(t.at)}"
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


def refreshed(state: DeviceState, scheduled: float | None, now: float) -> DeviceState | None:
    """The hot path: a bare heartbeat of an online device none of whose deadlines has
    come, or None when the engine's general path must decide.

    The engine's answer is known in that case (``observe`` would apply no deadline
    and make no transition: only the three times move, nothing durable changes), so
    the state is built directly; tests/hub check that it is the engine's answer. The
    heap needs nothing either: the live entry (``scheduled``, never later than the old
    deadline, which is never later than the new one) fires first and re-arms.
    """
    anchor = state.anchor
    if (
        state.status is not Status.ONLINE
        or state.flapping
        or scheduled is None
        or scheduled <= now
        or anchor is None
        or anchor > now
    ):
        return None
    return DeviceState(
        status=Status.ONLINE,
        since=state.since,
        last_seen=now,
        last_own=now,
        anchor=now,
        reason=state.reason,
        source=state.source,
        session=state.session,
        flaps=state.flaps,
        flapping=False,
    )


class Entry:
    """A device's hot state. Mutated only on the event loop.

    ``scheduled`` is the deadline of this device's live heap entry, if any.
    """

    __slots__ = (
        "attributes",
        "created_at",
        "labels",
        "metrics",
        "profile",
        "scheduled",
        "state",
        "updated_at",
    )

    def __init__(
        self,
        state: DeviceState,
        profile: Profile,
        labels: Mapping[str, str] = _EMPTY,
        attributes: Mapping[str, Any] = _EMPTY,
        metrics: Mapping[str, Any] = _EMPTY,
        created_at: float = 0.0,
        updated_at: float = 0.0,
    ) -> None:
        self.state = state
        self.profile = profile
        self.labels = labels
        self.attributes = attributes
        self.metrics = metrics
        self.created_at = created_at
        self.updated_at = updated_at
        self.scheduled: float | None = None


@dataclass(frozen=True, slots=True)
class BeatResult:
    device_id: str
    state: DeviceState
    profile: Profile


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

    def __init__(self, settings: Settings, store: Store, clock: Clock | None = None) -> None:
        self.settings = settings
        self.profiles = settings.profiles
        self.store = store
        self.clock = clock or SystemClock()
        self.entries: dict[str, Entry] = {}
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
        self._heap: list[tuple[float, str]] = []
        self._timer_wake = asyncio.Event()
        self._seen: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.stopped = False
        #: The newest seq published (and so committed): the end of any backfill.
        self.published_seq = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, timers: bool = True) -> None:
        """Open the store, rebuild hot state and the deadline heap, run.

        Deadlines that passed while the hub was down are on the heap like any other
        and the timer fires them at once, in chunks, stamped at their deadlines:
        exactly as if the hub had been running. The hub serves meanwhile, and reads
        show those devices as the engine judges them now (see ``view``), so a large
        fleet does not keep the hub unavailable while its backlog is committed.

        ``timers=False`` starts only the committer: tests then drive time themselves
        with ``sweep(now)`` and a manual clock.
        """
        await self.store.open()
        self.seq = self.published_seq = await self.store.last_seq()
        now = self.clock.now()
        heap = self._heap
        counts = self.status_counts
        overdue = 0
        for record in await self.store.load_devices():
            entry = Entry(
                record.state,
                self._profile_or_default(record.profile),
                record.labels,
                record.attributes,
                record.metrics,
                record.created_at,
                record.updated_at,
            )
            self.entries[record.id] = entry
            counts[record.state.status] += 1
            deadline = next_deadline(entry.state, entry.profile)
            if deadline is not None:
                entry.scheduled = deadline
                heap.append((deadline, record.id))
                overdue += deadline <= now
        heapq.heapify(heap)
        # A million device entries live as long as the process: move them out of the
        # cyclic collector's sight so full collections stay short.
        gc.collect()
        gc.freeze()
        log.info("event=loaded devices=%d overdue=%d seq=%d", len(self.entries), overdue, self.seq)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.committer.run(), name="committer")]
        if timers:
            self._tasks += [
                loop.create_task(self._timer(), name="deadline-timer"),
                loop.create_task(self._seen_ticker(), name="seen-ticker"),
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

    def _emit(
        self, device_id: str, entry: Entry, transitions: Sequence[Transition], changes: _Changes
    ) -> None:
        counts = self.status_counts
        for transition in transitions:
            self.seq += 1
            changes.events.append(EventRecord(self.seq, device_id, transition))
            counts[transition.from_status] -= 1
            counts[transition.to_status] += 1
            self.metrics.transitions.inc(
                1.0, transition.from_status.value, transition.to_status.value
            )

    def _reschedule(self, device_id: str, entry: Entry) -> None:
        deadline = next_deadline(entry.state, entry.profile)
        if deadline is None:
            return
        scheduled = entry.scheduled
        # An existing earlier entry will fire first and re-check; never add a second.
        if scheduled is not None and scheduled <= deadline:
            return
        entry.scheduled = deadline
        heapq.heappush(self._heap, (deadline, device_id))
        if self._heap[0][1] == device_id:
            self._timer_wake.set()

    def _advance(self, device_id: str, entry: Entry, now: float, changes: _Changes) -> None:
        step = advance(entry.state, entry.profile, now)
        entry.state = step.state
        if step.changed:
            changes.presence.add(device_id)
            self._emit(device_id, entry, step.transitions, changes)
        self._reschedule(device_id, entry)

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
    ) -> Entry:
        entry = self.entries.get(device_id)
        if entry is None:
            if not register:
                raise NotFound(f"no device {device_id!r}")
            entry = Entry(new_device(now), self.profiles.default, created_at=now, updated_at=now)
            self.entries[device_id] = entry
            self.status_counts[Status.UNKNOWN] += 1
            changes.ids.add(device_id)
            # No "device created" message: the unknown → online transition that
            # follows in this same commit tells subscribers everything they need.
        step = observe(entry.state, observation, entry.profile, now)
        entry.state = step.state
        if attributes:
            entry.attributes = {**entry.attributes, **attributes}
        if metrics:
            entry.metrics = dict(metrics)
        if step.changed:
            changes.presence.add(device_id)
            self._emit(device_id, entry, step.transitions, changes)
        if device_id in changes.ids:
            pass  # a full row is part of this operation's commit already
        elif attributes or metrics:
            self.committer.mark_dirty(device_id)
        elif not step.changed:
            self.committer.mark_seen(device_id)
        if step.state.last_seen == now:
            self._seen.add(device_id)
        self._reschedule(device_id, entry)
        return entry

    def _refresh(self, device_id: str, entry: Entry, now: float) -> bool:
        """The hot path (see ``refreshed``): True when applied here."""
        state = refreshed(entry.state, entry.scheduled, now)
        if state is None:
            return False
        entry.state = state
        self.committer.mark_seen(device_id)
        self._seen.add(device_id)
        return True

    def _check_attributes(self, device_id: str, attributes: Mapping[str, Any] | None) -> None:
        """Attributes merge into the stored ones; refuse a merge past the cap, so no
        device can grow its state without bound 256 keys at a time."""
        if not attributes:
            return
        entry = self.entries.get(device_id)
        current = entry.attributes if entry is not None else _EMPTY
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
            entry = self.entries.get(device_id)
            if entry is not None and self._refresh(device_id, entry, now):
                self.metrics.heartbeats.inc(1.0, _HEARTBEAT)
                return BeatResult(device_id, entry.state, entry.profile)
        self._check_attributes(device_id, attributes)
        changes = _Changes()
        entry = self._observe(
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
        return BeatResult(device_id, entry.state, entry.profile)

    async def heartbeats(
        self, items: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]]
    ) -> list[BeatResult | InvalidInput]:
        """Many heartbeats, one commit. An item that is refused (its attributes would
        overflow the device's) changes nothing and comes back as its error."""
        now = self.clock.now()
        changes = _Changes()
        results: list[BeatResult | InvalidInput] = []
        applied = 0
        entries = self.entries
        seen: list[str] = []
        for device_id, attributes, metrics in items:
            if not (attributes or metrics):
                entry = entries.get(device_id)
                if entry is not None:
                    state = refreshed(entry.state, entry.scheduled, now)
                    if state is not None:
                        entry.state = state
                        seen.append(device_id)
                        results.append(BeatResult(device_id, state, entry.profile))
                        continue
            try:
                self._check_attributes(device_id, attributes)
            except InvalidInput as exc:
                results.append(exc)
                continue
            entry = self._observe(
                device_id,
                _BEAT,
                now,
                changes,
                attributes=attributes,
                metrics=metrics,
            )
            results.append(BeatResult(device_id, entry.state, entry.profile))
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
        if observation.source is Source.MANUAL and observation.status in (None, Status.UNKNOWN):
            # Refused before registering: bad input never changes state (as RedisHub).
            raise ValueError("a manual observation needs a target status other than unknown")
        now = self.clock.now()
        changes = _Changes()
        entry = self._observe(device_id, observation, now, changes, register=register)
        await self._commit(changes)
        return BeatResult(device_id, entry.state, entry.profile)

    async def put_device(
        self,
        device_id: str,
        *,
        profile: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> tuple[DeviceRecord, bool]:
        """Register or update a device's profile and labels; True if it was created."""
        if profile is not None and profile not in self.profiles:
            raise InvalidInput(f"no profile called {profile!r}", code="unknown_profile")
        now = self.clock.now()
        changes = _Changes()
        entry = self.entries.get(device_id)
        created = entry is None
        if entry is None:
            entry = Entry(new_device(now), self.profiles.default, created_at=now)
            self.entries[device_id] = entry
            self.status_counts[Status.UNKNOWN] += 1
        if profile is not None and profile != entry.profile.name:
            entry.profile = self.profiles.get(profile)
            # A different profile means different deadlines: apply any now due, and
            # schedule the new one (it may be earlier than the one on the heap).
            entry.scheduled = None
            self._advance(device_id, entry, now, changes)
        if labels is not None:
            entry.labels = dict(labels)
        entry.updated_at = now
        changes.ids.add(device_id)
        self._publish_device("created" if created else "updated", device_id, entry)
        await self._commit(changes)
        return self.record(device_id, entry), created

    async def delete_device(self, device_id: str) -> None:
        entry = self.entries.pop(device_id, None)
        if entry is None:
            raise NotFound(f"no device {device_id!r}")
        self.status_counts[entry.state.status] -= 1
        entry.scheduled = None
        self._seen.discard(device_id)
        self._publish_device("deleted", device_id, None)
        await self._commit(_Changes(ids={device_id}))

    # ------------------------------------------------------------------ timeouts

    def next_timer(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    async def sweep(self, now: float | None = None) -> int:
        """Fire every deadline due at ``now`` (default: the clock); returns transitions.

        Work is cut into chunks that are handed to the committer without waiting for
        them, so a burst of expiries is pipelined into a few large transactions while
        the loop still serves requests between chunks.
        """
        heap = self._heap
        entries = self.entries
        fired = 0
        chunk = self.settings.sweep_chunk
        while heap:
            now = self.clock.now() if now is None else now
            changes = _Changes()
            handled = 0
            while heap and heap[0][0] <= now and handled < chunk:
                deadline, device_id = heapq.heappop(heap)
                entry = entries.get(device_id)
                if entry is None or entry.scheduled != deadline:
                    continue  # superseded or deleted
                entry.scheduled = None
                handled += 1
                self._advance(device_id, entry, now, changes)
            fired += len(changes.events)
            if changes:
                self.committer.submit(changes.ids, changes.events, changes.presence)
            if handled < chunk:
                break
            await asyncio.sleep(0)
        return fired

    async def _timer(self) -> None:
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

    def _publish(self, events: Sequence[EventRecord]) -> None:
        """Log, measure and fan out committed events (called by the committer)."""
        now = self.clock.now()
        wire = []
        # One log record per commit, rendered as one line per transition: the
        # per-call cost of logging would otherwise dominate a burst of timeouts.
        if log.isEnabledFor(logging.INFO):
            log.info("", extra={BATCH: [_log_line(e) for e in events]})
        lag = self.metrics.timeout_lag
        for event in events:
            transition = event.transition
            entry = self.entries.get(event.device_id)
            if transition.source is Source.TIMEOUT:
                lag.observe(max(0.0, now - transition.at))
            wire.append(
                WireEvent(
                    event.seq,
                    event.device_id,
                    transition.from_status,
                    transition.to_status,
                    entry.labels if entry is not None else _EMPTY,
                    compact(orjson.dumps(event_json(event.seq, event.device_id, transition))),
                )
            )
        if events:
            self.published_seq = events[-1].seq
        self.broadcaster.publish(wire)

    def _publish_device(self, action: str, device_id: str, entry: Entry | None) -> None:
        if not self.broadcaster.subscribers:
            return
        body: dict[str, Any] = {"type": DEVICE, "action": action, "device_id": device_id}
        if entry is not None:
            body["device"] = device_json(self.record(device_id, entry), entry.profile)
        raw = orjson.dumps(body)
        labels = entry.labels if entry is not None else _EMPTY

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
            entries = self.entries
            stamps: dict[str, tuple[str, Mapping[str, str]]] = {}
            for device_id in seen:
                entry = entries.get(device_id)
                if entry is not None and entry.state.last_seen is not None:
                    stamps[device_id] = (rfc3339(entry.state.last_seen), entry.labels)

            self.broadcaster.publish_message(SEEN, partial(_seen_message, stamps))

    # ------------------------------------------------------------------ reads

    def record(self, device_id: str, entry: Entry) -> DeviceRecord:
        return DeviceRecord(
            id=device_id,
            profile=entry.profile.name,
            state=entry.state,
            labels=entry.labels,
            attributes=entry.attributes,
            metrics=entry.metrics,
            created_at=entry.created_at,
            updated_at=entry.updated_at,
        )

    def view(self, device_id: str, entry: Entry, now: float) -> DeviceRecord:
        """The device as a reader should see it at ``now``.

        Normally that is the hot state. A device whose deadline has passed but which
        the timer has not swept yet (the few milliseconds between a deadline and its
        sweep, or the backlog right after a restart) is shown as the engine judges it
        now; its transitions are published, with their seqs, when the sweep reaches it.
        """
        record = self.record(device_id, entry)
        scheduled = entry.scheduled
        if scheduled is not None and scheduled <= now:
            state = advance(entry.state, entry.profile, now).state
            record = replace(record, state=state)
        return record

    def _snapshot(
        self, ids: set[str], presence_ids: set[str]
    ) -> tuple[list[DeviceRecord], list[str], list[PresenceUpdate]]:
        entries = self.entries
        upserts = []
        deletes = []
        for device_id in ids:
            entry = entries.get(device_id)
            if entry is None:
                deletes.append(device_id)
            else:
                upserts.append(self.record(device_id, entry))
        presence = [
            PresenceUpdate(device_id, entry.state)
            for device_id in presence_ids
            if (entry := entries.get(device_id)) is not None
        ]
        return upserts, deletes, presence

    def get(self, device_id: str) -> tuple[DeviceRecord, Profile]:
        entry = self.entries.get(device_id)
        if entry is None:
            raise NotFound(f"no device {device_id!r}")
        return self.view(device_id, entry, self.clock.now()), entry.profile

    async def list_devices(
        self, query: DeviceQuery
    ) -> tuple[list[tuple[DeviceRecord, Profile]], str | None, int]:
        """A page of devices (current state), the next cursor, and the seq it reflects.

        The store orders and filters ids; presence comes from memory. A device whose
        status changed after its last commit is checked against the filter again.
        """
        rows = await self.store.list_devices(query)
        seq = self.seq
        now = self.clock.now()
        page = []
        for row in rows:
            entry = self.entries.get(row.id)
            if entry is None:
                continue
            record = self.view(row.id, entry, now)
            if query.status is not None and record.state.status is not query.status:
                continue
            page.append((record, entry.profile))
        cursor = rows[-1].id if len(rows) == query.limit else None
        return page, cursor, seq

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
                entry = self.entries.get(event.device_id)
                wire = WireEvent(
                    event.seq,
                    event.device_id,
                    transition.from_status,
                    transition.to_status,
                    entry.labels if entry is not None else _EMPTY,
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
        for device_id, entry in self.entries.items():
            if not stream_filter.matches_device(device_id, entry.labels):
                continue
            record = self.view(device_id, entry, now)
            if statuses and record.state.status not in statuses:
                continue
            devices.append(device_json(record, entry.profile))
        return self.seq, devices

    # ------------------------------------------------------------------ HubAPI (hub/api.py)

    async def read_device(self, device_id: str) -> tuple[DeviceRecord, Profile]:
        return self.get(device_id)

    async def knows(self, device_id: str) -> bool:
        return device_id in self.entries

    async def profile_of(self, device_id: str) -> Profile | None:
        return entry.profile if (entry := self.entries.get(device_id)) is not None else None

    async def device_count(self) -> int:
        return len(self.entries)

    async def current_seq(self) -> int:
        return self.seq

    async def ready(self) -> str | None:
        return None if self.committer.healthy else "store"

    async def read_snapshot(self, stream_filter: StreamFilter) -> tuple[int, list[dict[str, Any]]]:
        return self.snapshot(stream_filter)

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
