"""Rate limits for devices and keys: the ``RateLimiter`` seam and its in-memory backend.

Theory of operation
-------------------
A ``Rate`` has two independent rules, both from seed 001: a minimum interval between
accepted requests, and a cap per minute. Each is a GCRA (generic cell rate
algorithm), which keeps *one number* per subject: the theoretical arrival time
(TAT) of the next conforming request.

* interval ``I``: a request at ``now`` conforms when ``now >= tat``; it then sets
  ``tat = now + I``.
* per minute ``N``: emission interval ``T = 60 / N`` and burst tolerance
  ``60 - T``: a request conforms when ``now >= tat - (60 - T)``; it then sets
  ``tat = max(tat, now) + T``. An idle subject may send ``N`` at once, and then one
  every ``T`` seconds: never more than ``N`` per minute on average, and at most
  ``2N - 1`` in any one 60-second window (the burst plus a minute of refill).

A refused request changes nothing (a client hammering does not dig itself deeper);
the answer is how long until it would conform (``Retry-After``).

Both rules are a compare and a store, so the same algorithm runs as one Lua script
in Redis for the scale-out hub, with Redis's clock as the one clock; that backend
implements the same ``RateLimiter`` protocol.

Memory is bounded: a subject whose TATs have passed is indistinguishable from a new
one, so its cell can be dropped. Cells sit in a dict in least-recently-accepted
order; each call drops up to two expired cells from the front, and if the dict
still exceeds ``max_subjects`` the least recently accepted cell is evicted early
(which can only let that subject through sooner: the limiter fails open, never
closed, under memory pressure; ``evictions`` counts it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lastseen.clock import Clock

MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate limit; 0 disables a rule. ``Rate()`` limits nothing."""

    min_interval: float = 0.0
    per_minute: int = 0

    @property
    def is_open(self) -> bool:
        return self.min_interval <= 0 and self.per_minute <= 0

    @classmethod
    def of(cls, min_interval: float = 0.0, per_minute: int = 0) -> Rate | None:
        """The rate, or None when it limits nothing (callers skip the limiter)."""
        rate = cls(min_interval, per_minute)
        return None if rate.is_open else rate


class RateLimiter(Protocol):
    """Counts requests per subject (a device id, a key id) against a ``Rate``."""

    async def acquire(self, subject: str, rate: Rate) -> float:
        """Count one request if it conforms and return 0.0; otherwise count nothing
        and return the seconds until it would conform (> 0)."""
        ...


class _Cell:
    __slots__ = ("interval_tat", "minute_tat")

    def __init__(self) -> None:
        self.interval_tat = 0.0
        self.minute_tat = 0.0


class MemoryRateLimiter:
    """GCRA in a dict, for one process. O(1) per call, bounded memory."""

    def __init__(self, clock: Clock, *, max_subjects: int = 1_000_000) -> None:
        self._clock = clock
        self._cells: dict[str, _Cell] = {}
        self.max_subjects = max_subjects
        #: Cells dropped early because the dict was full.
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._cells)

    async def acquire(self, subject: str, rate: Rate) -> float:
        return self.check(subject, rate, self._clock.now())

    def check(self, subject: str, rate: Rate, now: float) -> float:
        """The synchronous core of ``acquire`` at time ``now``."""
        cells = self._cells
        cell = cells.pop(subject, None)
        if cell is None:
            cell = _Cell()
        wait = 0.0
        interval = rate.min_interval
        if interval > 0 and cell.interval_tat > now:
            wait = cell.interval_tat - now
        per_minute = rate.per_minute
        if per_minute > 0:
            emission = MINUTE / per_minute
            allowed_at = cell.minute_tat - (MINUTE - emission)
            if allowed_at > now:
                wait = max(wait, allowed_at - now)
        if wait == 0.0:
            if interval > 0:
                cell.interval_tat = now + interval
            if per_minute > 0:
                cell.minute_tat = max(cell.minute_tat, now) + MINUTE / per_minute
        # Re-inserted at the end: the dict stays in least-recently-used order.
        cells[subject] = cell
        self._trim(now)
        return wait

    def _trim(self, now: float) -> None:
        cells = self._cells
        for _ in range(2):
            oldest = next(iter(cells))
            cell = cells[oldest]
            if cell.interval_tat > now or cell.minute_tat > now:
                break
            del cells[oldest]
            if not cells:
                return
        while len(cells) > self.max_subjects:
            del cells[next(iter(cells))]
            self.evictions += 1
