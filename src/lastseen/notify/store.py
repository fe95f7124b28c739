"""The notifications' persistence seam, and the parts of it every backend shares.

Two implementations: ``SQLiteNotifyStore`` (embedded hub; its own database file next
to the hub's) and ``PostgresNotifyStore`` (scale-out: several hub instances share one
queue). Both give the same guarantees, checked by one contract test suite:

* **enqueue is idempotent** on ``(subscription, event id)``: every instance may
  enqueue every transition; the queue holds it once;
* **claims are exclusive**: a claimed delivery is leased to one worker until it
  finishes or the lease lapses (PostgreSQL: ``FOR UPDATE SKIP LOCKED``);
* **per-device order**: a device's delivery to a subscription is not claimable
  while an earlier one to that subscription is pending or being sent;
* **finishing is compare-and-set** on the attempt number: a worker whose lease
  lapsed cannot overwrite what the worker that took over decided;
* **alerts open once** per key, and resolve once, with their deliveries enqueued in
  the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from lastseen.notify.models import (
    Alert,
    AlertRule,
    AlertState,
    Attempt,
    Delivery,
    DeliveryStatus,
    NewDelivery,
    Subscription,
)
from lastseen.notify.policy import Decision

#: Builds an alert's deliveries from the alert as stored (with its id); None: none.
AlertDeliveries = Callable[[Alert], Sequence[NewDelivery]] | None

#: Candidates a claim considers per delivery it may return (the per-subscription cap
#: is applied to them in Python, in ``pick``).
CLAIM_OVERSCAN = 4


class NotifyStore(Protocol):
    """Subscriptions, the delivery queue with its dead letters, alert rules and alerts."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def put_subscription(self, subscription: Subscription) -> None:
        """Insert or replace by id."""
        ...

    async def get_subscription(self, subscription_id: str) -> Subscription | None: ...
    async def list_subscriptions(self) -> list[Subscription]: ...

    async def delete_subscription(self, subscription_id: str) -> bool:
        """Remove it and its deliveries; False when there was none."""
        ...

    async def enqueue(self, deliveries: Sequence[NewDelivery], cursor: int | None) -> int:
        """Add deliveries (ignoring ones already queued) and move the stream cursor
        forward to ``cursor``, in one transaction. Returns how many were new."""
        ...

    async def cursor(self) -> int:
        """The last transition seq whose deliveries are enqueued (0: none yet)."""
        ...

    async def claim(
        self, now: float, limit: int, lease: float, in_flight: Mapping[str, int], per_sub: int
    ) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries, oldest due first, respecting per-device
        order and at most ``per_sub`` in flight per subscription (``in_flight`` counts
        what this worker already sends). Each claimed delivery's ``attempts`` is the
        number of the attempt about to be made."""
        ...

    async def finish(self, delivery: Delivery, attempt: Attempt, decision: Decision) -> bool:
        """Record an attempt's outcome; False when the claim was lost meanwhile."""
        ...

    async def release(self, delivery: Delivery) -> bool:
        """Give back a claim without an attempt (shutdown): pending again, due now,
        its attempt count as before the claim. False when the claim was lost."""
        ...

    async def deliveries(
        self, subscription_id: str, status: DeliveryStatus | None, limit: int
    ) -> list[Delivery]:
        """Newest first."""
        ...

    async def get_delivery(self, delivery_id: int) -> Delivery | None: ...

    async def replay(self, subscription_id: str, delivery_id: int | None, now: float) -> int:
        """Dead (or delivered, when named by id) deliveries back to pending, due now,
        with a fresh budget. ``None``: every dead delivery of the subscription."""
        ...

    async def next_due(self) -> float | None:
        """The earliest time a pending delivery (or a lapsing lease) becomes due."""
        ...

    async def counts(self) -> dict[DeliveryStatus, int]: ...

    async def prune(self, delivered_before: float) -> int:
        """Forget deliveries delivered before that time (history is bounded)."""
        ...

    async def put_rule(self, rule: AlertRule) -> None: ...
    async def delete_rule(self, name: str) -> bool: ...
    async def list_rules(self) -> list[AlertRule]: ...

    async def open_alert(self, alert: Alert, deliveries: AlertDeliveries = None) -> Alert | None:
        """Insert an open alert; None when one with its key exists (another instance,
        or this one before a restart, opened it).

        ``deliveries(stored)`` builds the alert's webhook deliveries; they are enqueued
        in the same transaction, so a crash can never keep the alert and lose them."""
        ...

    async def resolve_alert(self, alert: Alert, deliveries: AlertDeliveries = None) -> Alert | None:
        """Open → resolved by key; None when it was not open. A ``fired`` alert
        (already resolved) is inserted as such, once. ``deliveries`` as for
        ``open_alert``."""
        ...

    async def alerts(self, state: AlertState | None, limit: int) -> list[Alert]:
        """Newest first."""
        ...

    async def open_alerts(self) -> list[Alert]: ...


def pick(
    candidates: Sequence[Delivery], limit: int, in_flight: Mapping[str, int], per_sub: int
) -> list[Delivery]:
    """The claimable subset of ``candidates`` (already due and in order): at most
    ``limit``, at most ``per_sub`` in flight per subscription, one per device and
    subscription (the next of a device waits for this one). Pure."""
    taken: dict[str, int] = {}
    devices: set[tuple[str, str]] = set()
    out: list[Delivery] = []
    for delivery in candidates:
        if len(out) >= limit:
            break
        sub = delivery.subscription_id
        key = (sub, delivery.device_id)
        if key in devices:
            continue
        if in_flight.get(sub, 0) + taken.get(sub, 0) >= per_sub:
            continue
        taken[sub] = taken.get(sub, 0) + 1
        devices.add(key)
        out.append(delivery)
    return out


def busy(in_flight: Mapping[str, int], per_sub: int) -> Collection[str]:
    """Subscriptions with no room for another delivery."""
    return [sub for sub, n in in_flight.items() if n >= per_sub]
