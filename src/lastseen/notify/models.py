"""The values of notifications: subscriptions, deliveries, alert rules and alerts.

Frozen, slotted dataclasses: the stores return them, the pure modules decide with
them, the HTTP layer renders them. None of them does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from lastseen.presence import Status


class Format(StrEnum):
    """How a webhook body is shaped: lastseen's own JSON, or a Slack incoming webhook."""

    JSON = "json"
    SLACK = "slack"


class DeliveryStatus(StrEnum):
    """``pending`` (due at ``next_at``), ``sending`` (claimed under a lease),
    ``delivered`` (a 2xx answer), ``dead`` (the retry budget ran out)."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    DEAD = "dead"


class AlertKind(StrEnum):
    OFFLINE_FOR = "offline_for"
    STALE_FOR = "stale_for"
    FLAPPING = "flapping"
    BACK_ONLINE = "back_online"


class AlertState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Target:
    """Which devices something applies to; empty fields match every device."""

    devices: frozenset[str] = frozenset()
    labels: tuple[tuple[str, str], ...] = ()
    profiles: frozenset[str] = frozenset()

    def matches(self, device_id: str, labels: Mapping[str, str], profile: str) -> bool:
        if self.devices and device_id not in self.devices:
            return False
        if self.profiles and profile not in self.profiles:
            return False
        return all(labels.get(k) == v for k, v in self.labels)


@dataclass(frozen=True, slots=True)
class WebhookFilter:
    """Which events a subscription receives.

    Transitions match when ``transitions`` is on, the device matches ``target``, and
    the transition's from and to statuses are in ``from_statuses`` / ``to_statuses``
    (empty: any). Alerts match when ``alerts`` is on, the device matches, and the
    rule is in ``rules`` (empty: any).
    """

    target: Target = field(default_factory=Target)
    transitions: bool = True
    from_statuses: frozenset[Status] = frozenset()
    to_statuses: frozenset[Status] = frozenset()
    alerts: bool = True
    rules: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Subscription:
    """A webhook. ``secret`` signs every body; the API shows it only at creation."""

    id: str
    url: str
    secret: str
    filter: WebhookFilter = field(default_factory=WebhookFilter)
    headers: Mapping[str, str] = field(default_factory=dict)
    format: Format = Format.JSON
    description: str = ""
    enabled: bool = True
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to enqueue: idempotent on ``(subscription_id, event_id)``."""

    subscription_id: str
    event_id: str
    device_id: str
    body: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one subscription."""

    id: int
    subscription_id: str
    event_id: str
    device_id: str
    body: bytes
    status: DeliveryStatus
    attempts: int
    created_at: float
    next_at: float
    lease_until: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    #: The receiver's last answer, cut to ``RESPONSE_CAP`` bytes.
    last_response: str | None = None
    delivered_at: float | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of one HTTP attempt, as the worker reports it."""

    at: float
    duration: float
    status: int | None = None
    error: str | None = None
    response: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A rule: when a matching device is ``kind`` (for ``duration`` / ``count`` in
    ``window``), open an alert; resolve it when the episode ends."""

    name: str
    kind: AlertKind
    target: Target = field(default_factory=Target)
    #: offline_for / stale_for: seconds the episode must last before it alerts.
    duration: float = 0.0
    #: flapping: more than ``count`` transitions within ``window`` seconds ...
    count: int = 0
    window: float = 0.0
    #: ... and it resolves after ``quiet`` seconds without a transition.
    quiet: float = 0.0
    #: Defined in the config file (read-only over the API) or through the API.
    source: str = "api"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert. ``key`` is deterministic (rule, device, episode start) so that several
    hub instances judging the same transitions open it once."""

    key: str
    rule: str
    kind: AlertKind
    device_id: str
    state: AlertState
    opened_at: float
    resolved_at: float | None = None
    reason: str = ""
    id: int = 0


@dataclass(frozen=True, slots=True)
class AlertChange:
    """What the alert engine decided: ``opened``, ``resolved`` or ``fired`` (a
    one-shot alert such as back_online, opened and resolved at once)."""

    action: str
    alert: Alert
