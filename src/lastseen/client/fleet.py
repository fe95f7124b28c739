"""The schedule of a simulated fleet: which device beats when, and which beats are lost.

Pure, in the style of a sans-IO protocol core: it never reads a clock, sleeps or
does I/O. The driver asks ``next_deadline()`` ("when do I have work?"), and at or
after that time calls ``pop_due(now)`` to get the heartbeats to send. Randomness
comes from an injected source, so a seeded ``random.Random`` replays a run exactly
and tests script it.

Each device behaves like a real one: its first beat falls at a random point of
the first interval (a fleet does not boot in lockstep), and after each beat it
waits ``interval * (1 ± jitter)`` before the next, counted from when the beat was
actually taken. A driver that falls behind therefore sends late but never piles up
a backlog of stale beats. A beat is dropped with probability ``loss`` (the device
still waits for its next turn), which is how the hub gets to see timeouts.

Memory: the schedule must hold up to a million devices. A heap of ``(time, index)``
tuples costs over 100 bytes a device; instead each entry is one int,
``microseconds_since_start << 20 | index``, which orders by time and then index
(``MAX_DEVICES`` < 2**20) at about a third of that.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from lastseen.client.resume import RandomSource

MAX_DEVICES = 1_000_000

_INDEX_BITS = 20
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """A simulated fleet: ``devices`` ids ``<prefix><zero-padded index>``, each
    beating every ``interval`` seconds ± ``jitter`` (a fraction of the interval,
    below 1), each beat lost with probability ``loss``."""

    devices: int
    interval: float
    jitter: float = 0.1
    loss: float = 0.0
    prefix: str = "sim-"

    def __post_init__(self) -> None:
        if not 1 <= self.devices <= MAX_DEVICES:
            raise ValueError(f"devices must be between 1 and {MAX_DEVICES}, got {self.devices}")
        if not (math.isfinite(self.interval) and self.interval > 0):
            raise ValueError(f"interval must be a positive number of seconds, got {self.interval}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be a fraction in [0, 1), got {self.jitter}")
        if not 0 <= self.loss <= 1:
            raise ValueError(f"loss must be a probability in [0, 1], got {self.loss}")

    def device_id(self, index: int) -> str:
        """The id of device ``index``; zero-padded so ids sort in index order."""
        width = len(str(self.devices - 1))
        return f"{self.prefix}{index:0{width}d}"


@dataclass(frozen=True, slots=True)
class DueBeats:
    """What ``pop_due`` found: beats to send now, and how many were lost instead."""

    device_ids: tuple[str, ...]
    dropped: int = 0


class FleetSchedule:
    """When each device of ``plan`` beats next, starting at time ``start`` (seconds
    on whatever clock the driver uses)."""

    __slots__ = ("_heap", "_plan", "_rng", "_start")

    def __init__(self, plan: FleetPlan, *, start: float, rng: RandomSource) -> None:
        self._plan = plan
        self._start = start
        self._rng = rng
        first = (
            (self._micros(plan.interval * rng.random()) << _INDEX_BITS) | index
            for index in range(plan.devices)
        )
        self._heap = list(first)
        heapq.heapify(self._heap)

    @property
    def plan(self) -> FleetPlan:
        return self._plan

    def _micros(self, offset: float) -> int:
        return max(0, round(offset * _US))

    def next_deadline(self) -> float:
        """When the earliest device is due to beat."""
        return self._start + (self._heap[0] >> _INDEX_BITS) / _US

    def pop_due(self, now: float, limit: int) -> DueBeats:
        """Take the beats due at ``now``, earliest first, at most ``limit`` of them
        to send (lost beats do not count against ``limit``); reschedule each device."""
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        plan = self._plan
        heap = self._heap
        rng = self._rng
        elapsed = self._micros(now - self._start)
        threshold = (elapsed << _INDEX_BITS) | _INDEX_MASK
        sent: list[str] = []
        dropped = 0
        # Every popped device is rescheduled strictly after ``now`` (jitter < 1), so
        # each device is popped at most once per call: the loop is bounded by the fleet.
        while heap and heap[0] <= threshold and len(sent) < limit:
            index = heap[0] & _INDEX_MASK
            if plan.loss and rng.random() < plan.loss:
                dropped += 1
            else:
                sent.append(plan.device_id(index))
            wait = plan.interval * (1 + plan.jitter * (2 * rng.random() - 1))
            # At least 1 µs later, so rounding can never make it due again right now.
            next_at = max(elapsed + 1, self._micros(now - self._start + wait))
            heapq.heapreplace(heap, (next_at << _INDEX_BITS) | index)
        return DueBeats(tuple(sent), dropped)
