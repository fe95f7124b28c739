"""Prometheus metrics of a shared (Redis) hub instance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lastseen.hub.instruments import CommonMetrics
from lastseen.metrics import LAG_BUCKETS

if TYPE_CHECKING:
    from lastseen.scaleout.hub import RedisHub


class ScaleoutMetrics(CommonMetrics):
    """Counters are this instance's; gauges of fleet state read Redis's cached view."""

    def __init__(self, hub: RedisHub) -> None:
        super().__init__(lambda: len(hub.broadcaster.subscribers))
        r = self.registry
        self.transitions = r.counter(
            "lastseen_transitions_total",
            "Status transitions published by this instance, by from and to.",
            ["from", "to"],
        )
        r.gauge(
            "lastseen_devices",
            "Devices by current status (fleet-wide, refreshed every second).",
            lambda: {(s,): float(n) for s, n in hub.status_counts.items()},
            ["status"],
        )
        self.timeout_lag = r.histogram(
            "lastseen_timeout_lag_seconds",
            "Time from a timeout's deadline to its publication on this instance.",
            LAG_BUCKETS,
        )
        self.redis_errors = r.counter(
            "lastseen_redis_errors_total", "Redis calls that failed, by background task.", ["task"]
        )
        self.swept = r.counter(
            "lastseen_sweep_transitions_total", "Timeout transitions this instance fired."
        )
        self.outbox_rows = r.counter(
            "lastseen_outbox_rows_written_total", "Events and device rows drained to the store."
        )
        self.outbox_failures = r.counter(
            "lastseen_outbox_failures_total", "Outbox batches the store refused (retried)."
        )
        self.outbox_lost = r.counter(
            "lastseen_outbox_lost_total",
            "Events trimmed from the stream before they reached the store (overflow policy "
            "drop-oldest at the stream's cap).",
        )
        r.gauge(
            "lastseen_outbox_backlog",
            "Events in Redis not yet committed to the store (as last seen by the drainer).",
            lambda: {(): float(hub.outbox_backlog)},
        )
        r.gauge(
            "lastseen_seq",
            "The newest seq this instance published.",
            lambda: {(): float(hub.published_seq)},
        )
