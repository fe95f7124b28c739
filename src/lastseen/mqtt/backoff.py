"""Reconnect delays: capped exponential backoff with jitter, as a pure function.

Jitter spreads the reconnects of many hub instances after a broker restart, so they
do not all hit the broker in the same instant. The random draw is passed in, so tests
check the bounds without a random generator and the shell owns the randomness.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """``initial * 2**attempt`` seconds, capped at ``cap``, scaled into ``[1 - jitter, 1]``."""

    initial: float = 0.5
    cap: float = 30.0
    jitter: float = 0.5

    def delay(self, attempt: int, draw: float) -> float:
        """The wait before reconnect number ``attempt`` (0 for the first), given a
        uniform ``draw`` in ``[0, 1)``."""
        base = self.initial * 2.0 ** min(attempt, 62)
        return min(self.cap, base) * (1.0 - self.jitter * draw)
