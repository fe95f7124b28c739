"""Where a resuming event stream stands, and how long to wait before reconnecting.

Pure: no I/O, no clock, randomness injected. ``HubClient.stream`` is the shell
that connects, feeds frames in here and sleeps the delays it is told.

Resuming: the first connection asks for ``?after=SEQ`` when the caller gave one;
every reconnect instead sends ``Last-Event-ID`` with the ``seq`` of the last
transition the caller received, so nothing is skipped and nothing repeated. A
``reset`` frame says that history is gone: its ``seq`` becomes the resume point,
otherwise a reconnect would ask for the same lost history and be reset again.
Other frames (``seen``) do not move it, even though they carry the persistent SSE
id: that id can only be a transition's.

Backoff: capped exponential with "equal jitter" (half the delay fixed, half
random), so a fleet of dashboards cut off together does not reconnect in lockstep,
and no reconnect is ever immediate. The failure count starts again once a
connection delivered a frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lastseen.client.errors import HubError
from lastseen.client.models import StreamEvent


class RandomSource(Protocol):
    """What we need of ``random.Random``: a float in [0, 1)."""

    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays before reconnect attempt ``n`` (0-based): between half and all of
    ``min(cap, initial * factor ** n)`` seconds."""

    initial: float = 0.5
    cap: float = 30.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.cap:
            raise ValueError(f"need 0 < initial <= cap, got {self.initial} and {self.cap}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")

    def delay(self, attempt: int, rng: RandomSource, *, initial: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt``; ``initial`` overrides the base
        (the server's ``retry:`` hint)."""
        base = self.initial if initial is None else initial
        try:
            ceiling = min(self.cap, base * self.factor ** max(attempt, 0))
        except OverflowError:
            ceiling = self.cap
        return ceiling / 2 + rng.random() * ceiling / 2


class StreamResume:
    """The resume point and failure count of one logical stream across connections."""

    __slots__ = ("_after", "_backoff", "_max_attempts", "_rng", "failures", "last_event_id")

    def __init__(
        self,
        *,
        after: int | None,
        backoff: Backoff,
        rng: RandomSource,
        max_attempts: int | None = None,
    ) -> None:
        if after is not None and after < 0:
            raise ValueError(f"after must be >= 0, got {after}")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self._after = after
        self._backoff = backoff
        self._rng = rng
        self._max_attempts = max_attempts
        #: The ``Last-Event-ID`` for the next connection; None until a transition arrived.
        self.last_event_id: str | None = None
        #: Consecutive connections that failed without delivering a frame.
        self.failures = 0

    def query(self) -> list[tuple[str, str]]:
        """Query parameters that position the next connection."""
        if self.last_event_id is None and self._after is not None:
            return [("after", str(self._after))]
        return []

    def headers(self) -> dict[str, str]:
        """Headers that position the next connection."""
        if self.last_event_id is None:
            return {}
        return {"Last-Event-ID": self.last_event_id}

    def received(self, event: StreamEvent) -> None:
        """A frame reached the caller: the connection works, maybe the position moved."""
        self.failures = 0
        if event.event == "transition" and event.id is not None:
            self.last_event_id = event.id
        elif event.event == "reset":
            seq = event.data.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
                self.last_event_id = str(seq)

    def failed(self, error: HubError, *, retry_ms: int | None = None) -> float | None:
        """The connection failed or ended with ``error``: seconds to wait before the
        next attempt, or None to give up (not retryable, or out of attempts)."""
        if not error.retryable:
            return None
        attempt = self.failures
        self.failures += 1
        if self._max_attempts is not None and self.failures > self._max_attempts:
            return None
        initial = None if retry_ms is None else max(retry_ms / 1000, 0.001)
        return self._backoff.delay(attempt, self._rng, initial=initial)
