"""Uptime: how much of a time window a device spent in each status. Pure: no I/O, no clock.

Theory of operation. A device's status only ever changes by a transition, and every
transition is recorded with the status it left (``from``) and the one it entered
(``to``). So the status at any instant is the ``to`` of the last transition before
it, or, when none is known (the history was pruned, or the window starts before the
first one), the ``from`` of the first transition after it. A device with no
transition at all has held its current status since ``since``.

The window is ``[start, end]`` (``end`` is "now"). Time before the device was created
counts as ``unknown``, as does time the history cannot account for. Transitions of an
earlier device with the same id (deleted, then registered again) happened before
``created_at`` and are ignored. Transitions are taken in ``seq`` order; a time that
runs backwards (a clock step) is clamped to the previous one, and a time after
``end`` (a future-dated event, clock skew between instances) to ``end``, so no
interval is ever negative and the fractions always sum to 1.

``UptimeCounter`` is fed one transition at a time, so a caller can stream any amount
of history through it with constant memory (the fleet summary keeps one per device).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lastseen.errors import InvalidInput
from lastseen.presence import Status

#: ``90``, ``90s``, ``15m``, ``24h``, ``7d``: a whole number of seconds, minutes,
#: hours or days (at most 7 digits).
WINDOW = re.compile(r"[1-9][0-9]{0,6}[smhd]?")
WINDOW_PATTERN = f"^{WINDOW.pattern}$"
DEFAULT_WINDOW = 86_400.0
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_window(text: str | None) -> float:
    """Seconds in a window written like ``24h``; empty or None gives 24 hours."""
    if not text:
        return DEFAULT_WINDOW
    if WINDOW.fullmatch(text) is None:
        raise InvalidInput(
            f"window {text!r} must be a whole number of seconds, or end in s, m, h or d "
            "(e.g. 3600, 1h, 24h, 7d, 30d)",
            code="invalid_window",
        )
    unit = _UNITS.get(text[-1])
    return float(text) if unit is None else float(text[:-1]) * unit


@dataclass(frozen=True, slots=True)
class Uptime:
    """Seconds spent in each status over ``[start, end]``, and the transitions in it."""

    start: float
    end: float
    seconds: Mapping[Status, float]
    transitions: int

    @property
    def fractions(self) -> dict[Status, float]:
        span = self.end - self.start
        if span <= 0:
            return {status: float(status is Status.UNKNOWN) for status in Status}
        return {status: self.seconds[status] / span for status in Status}


class UptimeCounter:
    """Accumulates one device's time per status from its transitions, in seq order."""

    __slots__ = (
        "_at",
        "_begin",
        "_count",
        "_created",
        "_end",
        "_last",
        "_seconds",
        "_start",
        "_state",
    )

    def __init__(self, *, start: float, end: float, created_at: float) -> None:
        self._start = start
        self._end = max(end, start)
        self._created = created_at
        # Time before the device existed is unknown; so is all of a window it never saw.
        self._begin = min(max(start, created_at), self._end)
        self._at = self._begin
        self._last = float("-inf")
        self._state: Status | None = None
        self._count = 0
        self._seconds = dict.fromkeys(Status, 0.0)

    def feed(self, at: float, from_status: Status, to_status: Status) -> None:
        """One transition of this device (call in seq order)."""
        if at < self._created:
            return  # an earlier device with the same id
        self._last = max(at, self._last)
        at = min(self._last, self._end)
        if at >= self._start:
            self._count += 1
        if at <= self._begin:
            self._state = to_status  # before (or at) the window: only the status carries
            return
        if self._state is None:
            self._state = from_status  # the first transition says what came before it
        self._seconds[self._state] += at - self._at
        self._at = at
        self._state = to_status

    def result(self, current: Status, since: float) -> Uptime:
        """The totals, given the device's current status and since when it holds it
        (what counts when no transition was fed)."""
        seconds = dict(self._seconds)
        seconds[Status.UNKNOWN] += self._begin - min(self._start, self._begin)
        if self._state is not None:
            seconds[self._state] += self._end - self._at
        else:
            held_from = min(max(since, self._begin), self._end)
            seconds[Status.UNKNOWN] += held_from - self._begin
            seconds[current] += self._end - held_from
        return Uptime(self._start, self._end, seconds, self._count)


def uptime(
    transitions: Iterable[tuple[float, Status, Status]],
    *,
    start: float,
    end: float,
    created_at: float,
    current: Status,
    since: float,
) -> Uptime:
    """Uptime over ``[start, end]`` from ``(at, from, to)`` transitions in seq order."""
    counter = UptimeCounter(start=start, end=end, created_at=created_at)
    for at, from_status, to_status in transitions:
        counter.feed(at, from_status, to_status)
    return counter.result(current, since)


@dataclass(frozen=True, slots=True)
class FleetUptime:
    """Mean fractions over devices, total device-seconds per status, and counts."""

    devices: int
    fractions: Mapping[Status, float]
    seconds: Mapping[Status, float]
    transitions: int


def fleet(uptimes: Iterable[Uptime]) -> FleetUptime:
    """The fleet summary: each device weighs the same in the mean fractions."""
    count = 0
    transitions = 0
    fraction_sums = dict.fromkeys(Status, 0.0)
    seconds = dict.fromkeys(Status, 0.0)
    for one in uptimes:
        count += 1
        transitions += one.transitions
        for status, value in one.fractions.items():
            fraction_sums[status] += value
        for status, value in one.seconds.items():
            seconds[status] += value
    fractions = {s: (v / count if count else 0.0) for s, v in fraction_sums.items()}
    return FleetUptime(count, fractions, seconds, transitions)
