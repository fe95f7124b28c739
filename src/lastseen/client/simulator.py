"""The fleet simulator's driver: turns a ``FleetSchedule`` into real heartbeats.

The shell around the pure schedule: it reads the (injected) clock, sleeps until the
next beat is due and hands beats to an idle ``BeatSender``; there is one sender per
request in flight. When every sender is busy it stops taking beats, so a slow hub
makes the fleet beat late (as real devices on a slow network do) instead of
queueing requests without bound.

Each sender has its own keep-alive connection (``HubSender`` over a ``HubClient``
with one connection): with one shared pool of 64 busy connections, ``httpcore``'s
per-request pool bookkeeping (a scan of every connection, each probed for
readability) grew with the pool until it, not the hub, set the pace.

In batch mode beats are gathered for up to ``linger`` seconds, like a gateway
flushing its buffer, so one ``POST /v1/heartbeats`` carries many of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lastseen.client.errors import HubError
from lastseen.client.fleet import FleetSchedule
from lastseen.client.hub import MAX_BATCH, HubClient

DEFAULT_CONCURRENCY = 64
MAX_CONCURRENCY = 1024

#: Seconds the requests in flight get to finish once the run is over; past that
#: they are cancelled (and counted as abandoned) so the simulator stops on time.
DRAIN_GRACE = 3.0

#: Answers after which no further request can succeed: stop instead of hammering.
_FATAL_STATUSES = frozenset({401, 403})


class BeatSender(Protocol):
    """Sends heartbeats for ``device_ids``; returns how many the hub accepted.
    Raises ``HubError`` when the request as a whole failed."""

    async def __call__(self, device_ids: Sequence[str]) -> int: ...


class HubSender:
    """A ``BeatSender`` over a ``HubClient``: one request per beat, or one
    ``POST /v1/heartbeats`` per batch."""

    def __init__(self, client: HubClient, *, batch: bool) -> None:
        self._client = client
        self._batch = batch

    async def __call__(self, device_ids: Sequence[str]) -> int:
        if self._batch:
            result = await self._client.heartbeats(device_ids)
            return result.accepted
        accepted = 0
        for device_id in device_ids:
            await self._client.heartbeat(device_id)
            accepted += 1
        return accepted


@dataclass(slots=True)
class SimulationStats:
    """Running totals; read them at any time (progress) and after the run (summary)."""

    sent: int = 0
    errors: int = 0
    dropped: int = 0
    requests: int = 0
    abandoned: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    started: float = 0.0
    last_error: HubError | None = None
    fatal: HubError | None = None


class Simulator:
    """Runs ``schedule`` with ``senders``, one request in flight per sender at most.
    ``clock`` and ``sleep`` are injectable so tests can move time by hand."""

    def __init__(
        self,
        schedule: FleetSchedule,
        senders: Sequence[BeatSender],
        *,
        batch: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        grace: float = DRAIN_GRACE,
    ) -> None:
        if not 1 <= len(senders) <= MAX_CONCURRENCY:
            raise ValueError(f"between 1 and {MAX_CONCURRENCY} senders (concurrency) needed")
        self._schedule = schedule
        self._senders = senders
        self._batch_size = MAX_BATCH if batch else 1
        # Long enough to gather a useful batch, short against the interval so beats
        # are not much later than planned.
        self._linger = min(0.2, schedule.plan.interval / 4) if batch else 0.0
        self._clock = clock
        self._sleep = sleep
        self._grace = grace
        self._idle = list(senders)
        self._waiting_for_sender = False
        self._nap: asyncio.Future[None] | None = None
        self.stats = SimulationStats(started=clock())

    async def run(self, duration: float | None = None) -> SimulationStats:
        """Beat until ``duration`` seconds passed (None: until cancelled) or the hub
        refused our credentials; then give the requests in flight ``grace`` seconds."""
        stats = self.stats
        stats.started = self._clock()
        end = None if duration is None else stats.started + duration
        last_flush = stats.started
        pending: set[asyncio.Task[None]] = set()
        async with asyncio.TaskGroup() as tasks:
            while stats.fatal is None:
                now = self._clock()
                if end is not None and now >= end:
                    break
                wake = self._schedule.next_deadline()
                if self._batch_size > 1:
                    wake = max(wake, last_flush + self._linger)
                if end is not None:
                    wake = min(wake, end)
                if wake > now:
                    await self._pause(wake - now)
                    continue
                if not self._idle:
                    # Every sender is busy: the fleet waits (beats late), up to the end.
                    self._waiting_for_sender = True
                    await self._pause(None if end is None else end - now)
                    self._waiting_for_sender = False
                    continue
                due = self._schedule.pop_due(now, self._batch_size)
                stats.dropped += due.dropped
                if len(due.device_ids) < self._batch_size:
                    last_flush = now
                if due.device_ids:
                    task = tasks.create_task(self._deliver(self._idle.pop(), due.device_ids))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            if pending:
                _, late = await asyncio.wait(pending, timeout=self._grace)
                for task in late:
                    task.cancel()
        return stats

    async def _pause(self, seconds: float | None) -> None:
        """Sleep (None: until woken); ``_wake`` ends it early."""
        if seconds is None:
            self._nap = asyncio.get_running_loop().create_future()
        else:
            self._nap = asyncio.ensure_future(self._sleep(seconds))
        try:
            # asyncio.wait, unlike await, does not raise when the nap is cancelled.
            await asyncio.wait({self._nap})
        finally:
            self._nap.cancel()
            self._nap = None

    def _wake(self) -> None:
        if self._nap is not None:
            self._nap.cancel()

    async def _deliver(self, sender: BeatSender, device_ids: Sequence[str]) -> None:
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            accepted = await sender(device_ids)
        except HubError as exc:
            stats.errors += len(device_ids)
            stats.last_error = exc
            if exc.status in _FATAL_STATUSES:
                stats.fatal = exc
                self._wake()
        except asyncio.CancelledError:
            stats.abandoned += len(device_ids)
            raise
        else:
            stats.sent += accepted
            stats.errors += len(device_ids) - accepted
        finally:
            stats.requests += 1
            stats.in_flight -= 1
            self._idle.append(sender)
            if self._waiting_for_sender:
                self._wake()
