"""Who may do what: roles, the principal a request acts as, and the route table.

Pure functions of method and path, so the whole policy is testable without a server.
Anything not named here needs an admin key: a route added later is closed until
someone decides who may use it.

| role   | may                                                                  |
|--------|----------------------------------------------------------------------|
| admin  | everything (including webhooks, alert rules and alerts: ``lastseen.notify``) |
| read   | read devices, history and streams                                    |
| ingest | heartbeats for any device id (single and batched)                    |
| device | heartbeats for its own device, and read that device                  |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from lastseen.security.ratelimit import Rate


class Role(StrEnum):
    ADMIN = "admin"
    READ = "read"
    INGEST = "ingest"
    DEVICE = "device"


#: Roles a person can create with ``lastseen keys create`` (device tokens are issued
#: per device, by ``POST /v1/devices/{id}/token``).
KEY_ROLES = (Role.ADMIN, Role.READ, Role.INGEST)


class Kind(Enum):
    """What a request does, as far as permissions care."""

    HEARTBEAT = "heartbeat"  # POST /v1/devices/{id}/heartbeat
    BATCH = "batch"  # POST /v1/heartbeats
    DEVICE_READ = "device_read"  # GET /v1/devices/{id}, .../transitions, .../uptime
    DEVICE_WRITE = "device_write"  # PUT, DELETE /v1/devices/{id}
    READ = "read"  # GET /v1/devices, /v1/events, /v1/uptime
    STREAM = "stream"  # GET /v1/stream, /v1/ws
    ADMIN = "admin"  # keys, tokens, audit, and anything unknown


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a key's id, name and role (and device, for a token)."""

    key_id: str
    name: str
    role: Role
    device_id: str | None = None
    #: The key's own request rate limit, or None.
    rate: Rate | None = None


_PREFIX = "/v1/devices/"
_STREAMS = frozenset({"/v1/stream", "/v1/ws"})
_READS = frozenset({"/v1/devices", "/v1/events", "/v1/uptime"})
_DEVICE_READS = frozenset({"transitions", "uptime"})


def classify(method: str, path: str) -> tuple[Kind, str | None]:
    """The kind of a ``/v1`` request and the device id it names, if any."""
    if path.startswith(_PREFIX):
        rest = path[len(_PREFIX) :]
        device_id, slash, tail = rest.partition("/")
        if not slash:
            if method in ("GET", "HEAD"):
                return Kind.DEVICE_READ, device_id
            if method in ("PUT", "DELETE"):
                return Kind.DEVICE_WRITE, device_id
            return Kind.ADMIN, device_id
        if tail == "heartbeat" and method == "POST":
            return Kind.HEARTBEAT, device_id
        if tail in _DEVICE_READS and method in ("GET", "HEAD"):
            return Kind.DEVICE_READ, device_id
        return Kind.ADMIN, device_id
    if method in ("GET", "HEAD"):
        if path in _READS:
            return Kind.READ, None
        if path in _STREAMS:
            return Kind.STREAM, None
    elif path == "/v1/heartbeats" and method == "POST":
        return Kind.BATCH, None
    return Kind.ADMIN, None


_ALLOWED: dict[Role, frozenset[Kind]] = {
    Role.ADMIN: frozenset(Kind),
    Role.READ: frozenset({Kind.DEVICE_READ, Kind.READ, Kind.STREAM}),
    Role.INGEST: frozenset({Kind.HEARTBEAT, Kind.BATCH}),
    Role.DEVICE: frozenset({Kind.HEARTBEAT, Kind.DEVICE_READ}),
}


def allows(principal: Principal, kind: Kind, device_id: str | None) -> bool:
    """May ``principal`` do a request of ``kind`` (on ``device_id``)?"""
    if kind not in _ALLOWED[principal.role]:
        return False
    # A device token speaks only for its own device.
    return principal.role is not Role.DEVICE or device_id == principal.device_id
