"""Retry decisions for webhook deliveries. Pure: the clock and the randomness are passed in.

Backoff is exponential with *full jitter* (a uniformly random wait between 0 and
``base * 2 ** (attempt - 1)``, capped at ``cap``): receivers that come back after an
outage are not hit by every hub retrying in lockstep. The budget is both a number
of attempts and an age: whichever runs out first sends the delivery to the dead
letters, where an admin can inspect and replay it.

Ordering and concurrency are decided by the stores' claim (see ``store.py``): a
device's next delivery to a subscription is not claimable while an earlier one is
pending or being sent, and a subscription at its concurrency limit is skipped, so
one slow receiver holds only its own deliveries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lastseen.errors import ConfigError
from lastseen.notify.models import Attempt, DeliveryStatus

#: Bytes of a receiver's answer kept with the delivery.
RESPONSE_CAP = 1024


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry budget and backoff of deliveries."""

    max_attempts: int = 10
    #: Seconds after enqueueing past which no retry is scheduled.
    max_age: float = 86_400.0
    #: First backoff ceiling in seconds; doubles per attempt up to ``cap``.
    base: float = 1.0
    cap: float = 600.0
    #: Seconds one attempt may take.
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"webhook max attempts must be >= 1, got {self.max_attempts}")
        if not (self.base > 0 and self.cap >= self.base and self.max_age > 0 and self.timeout > 0):
            raise ConfigError("webhook backoff, cap, max age and timeout must be positive")

    @property
    def lease(self) -> float:
        """How long a claim holds a delivery: one attempt plus a margin, after which a
        crashed sender's claim lapses and another worker takes it over."""
        return self.timeout * 2 + 5.0


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to a delivery after an attempt."""

    status: DeliveryStatus
    #: When to try again (``pending`` only).
    next_at: float | None = None


def backoff(policy: RetryPolicy, attempt: int, random: Callable[[], float]) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): full jitter."""
    ceiling = min(policy.cap, policy.base * 2.0 ** min(attempt - 1, 60))
    return random() * ceiling


def decide(
    policy: RetryPolicy,
    attempt: Attempt,
    attempts: int,
    created_at: float,
    random: Callable[[], float],
) -> Decision:
    """After ``attempts`` attempts (this one included), of a delivery enqueued at
    ``created_at``: delivered, retry at some time, or dead."""
    if attempt.ok:
        return Decision(DeliveryStatus.DELIVERED)
    if attempts >= policy.max_attempts:
        return Decision(DeliveryStatus.DEAD)
    next_at = attempt.at + attempt.duration + backoff(policy, attempts, random)
    if next_at - created_at > policy.max_age:
        return Decision(DeliveryStatus.DEAD)
    return Decision(DeliveryStatus.PENDING, next_at)


def cap_response(text: str) -> str:
    """A receiver's answer, cut to ``RESPONSE_CAP`` bytes (on a character boundary)."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= RESPONSE_CAP:
        return text
    return raw[:RESPONSE_CAP].decode("utf-8", "ignore")
