"""The hub's Prometheus metrics, in one place so /metrics documents itself."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from lastseen.metrics import LAG_BUCKETS, Registry
from lastseen.presence import Status

if TYPE_CHECKING:
    from lastseen.hub.core import Hub

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident memory of this process now (not the peak)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class CommonMetrics:
    """The metrics every hub has, embedded or shared, named and explained once."""

    def __init__(self, subscribers: Callable[[], int]) -> None:
        r = self.registry = Registry()
        self.heartbeats = r.counter(
            "lastseen_heartbeats_total", "Signs of life received, by source.", ["source"]
        )
        r.gauge(
            "lastseen_stream_subscribers",
            "Open SSE and WebSocket subscribers.",
            lambda: {(): float(subscribers())},
        )
        self.subscriber_resets = r.counter(
            "lastseen_stream_overflows_total",
            "Subscribers reset and disconnected because they fell too far behind.",
        )
        self.rejected = r.counter(
            "lastseen_rejected_total", "Requests and messages refused, by error code.", ["code"]
        )
        r.gauge(
            "lastseen_process_resident_memory_bytes",
            "Resident memory of the hub process.",
            lambda: {(): float(rss_bytes())},
        )


class HubMetrics(CommonMetrics):
    def __init__(self, hub: Hub) -> None:
        super().__init__(lambda: len(hub.broadcaster.subscribers))
        r = self.registry
        self.transitions = r.counter(
            "lastseen_transitions_total", "Status transitions, by from and to.", ["from", "to"]
        )
        r.gauge(
            "lastseen_devices",
            "Devices by current status.",
            lambda: {(s.value,): float(n) for s, n in hub.status_counts.items()},
            ["status"],
        )
        self.timeout_lag = r.histogram(
            "lastseen_timeout_lag_seconds",
            "Time from a timeout's deadline to the publication of its transition.",
            LAG_BUCKETS,
        )
        self.commit_seconds = r.histogram(
            "lastseen_store_commit_seconds",
            "Duration of one group commit to the store.",
            (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.rows_written = r.counter(
            "lastseen_store_rows_written_total", "Device rows and events written to the store."
        )
        self.commit_failures = r.counter(
            "lastseen_store_commit_failures_total", "Store transactions that failed (retried)."
        )
        r.gauge(
            "lastseen_write_behind_backlog",
            "Devices waiting for the next commit or write-behind flush.",
            lambda: {(): float(hub.committer.backlog)},
        )
        r.gauge("lastseen_seq", "The newest assigned transition seq.", lambda: {(): float(hub.seq)})
        self.statuses = tuple(Status)
