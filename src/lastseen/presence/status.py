"""The vocabulary of presence: statuses, observation sources and transition reasons."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a device stands. ``stale`` is the grace period ("temporarily offline")."""

    UNKNOWN = "unknown"
    ONLINE = "online"
    STALE = "stale"
    OFFLINE = "offline"


class Source(StrEnum):
    """Who or what produced an observation (and so, a transition)."""

    HEARTBEAT = "heartbeat"
    TELEMETRY = "telemetry"
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    PROBE = "probe"
    MANUAL = "manual"
    TIMEOUT = "timeout"


#: Sources that are the device's own word: they always make it online at once.
OWN_SOURCES = frozenset({Source.HEARTBEAT, Source.TELEMETRY, Source.CONNECT})


class Reason(StrEnum):
    """Why a transition happened; recorded with every transition."""

    HEARTBEAT = "heartbeat"
    TELEMETRY = "telemetry"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STALE_TIMEOUT = "timeout:stale_after"
    OFFLINE_TIMEOUT = "timeout:offline_after"
    PROBE_OK = "probe_ok"
    PROBE_FAILED = "probe_failed"
    MANUAL = "manual"
