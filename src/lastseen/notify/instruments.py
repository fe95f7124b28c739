"""The notifier's Prometheus metrics (on the hub's registry, so /metrics shows them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lastseen.metrics import LAG_BUCKETS, Registry
from lastseen.notify.models import DeliveryStatus

if TYPE_CHECKING:
    from lastseen.notify.service import Notifier


class NotifyMetrics:
    def __init__(self, r: Registry, notifier: Notifier) -> None:
        self.deliveries = r.counter(
            "lastseen_webhook_deliveries_total",
            "Webhook attempts by outcome: delivered, retry, dead, lost (the claim lapsed).",
            ["outcome"],
        )
        self.retries = r.counter("lastseen_webhook_retries_total", "Webhook retries scheduled.")
        self.enqueued = r.counter("lastseen_webhook_enqueued_total", "Webhook deliveries queued.")
        self.dropped = r.counter(
            "lastseen_webhook_dropped_total",
            "Webhook deliveries dropped because the queue was full (webhook_max_queue).",
        )
        self.gaps = r.counter(
            "lastseen_webhook_gaps_total",
            "Times the notifier found transitions it could no longer read (history pruned).",
        )
        r.gauge(
            "lastseen_webhook_queue",
            "Webhook deliveries by status (dead = the dead letters).",
            lambda: {(s.value,): float(n) for s, n in notifier.counts.items()},
            ["status"],
        )
        r.gauge(
            "lastseen_webhook_dead_letters",
            "Webhook deliveries whose retry budget ran out, awaiting replay.",
            lambda: {(): float(notifier.counts[DeliveryStatus.DEAD])},
        )
        self.latency = r.histogram(
            "lastseen_webhook_delivery_latency_seconds",
            "Seconds from queueing an event to its successful delivery.",
            (*LAG_BUCKETS, 60.0, 300.0, 3600.0),
        )
        self.attempt_seconds = r.histogram(
            "lastseen_webhook_attempt_seconds", "Seconds one webhook attempt took.", LAG_BUCKETS
        )
        self.alerts = r.counter(
            "lastseen_alerts_total", "Alert changes by rule and action.", ["rule", "action"]
        )
        r.gauge(
            "lastseen_alerts_open",
            "Open alerts by rule.",
            lambda: {(k,): float(v) for k, v in notifier.engine.open_counts().items()},
            ["rule"],
        )
