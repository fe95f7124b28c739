"""The permission table: every role against every kind of request."""

from __future__ import annotations

import pytest

from lastseen.security import Kind, Principal, Role, allows, classify


@pytest.mark.parametrize(
    ("method", "path", "kind", "device"),
    [
        ("POST", "/v1/devices/pi-1/heartbeat", Kind.HEARTBEAT, "pi-1"),
        ("GET", "/v1/devices/pi-1/heartbeat", Kind.ADMIN, "pi-1"),
        ("POST", "/v1/heartbeats", Kind.BATCH, None),
        ("GET", "/v1/heartbeats", Kind.ADMIN, None),
        ("GET", "/v1/devices/pi-1", Kind.DEVICE_READ, "pi-1"),
        ("HEAD", "/v1/devices/pi-1", Kind.DEVICE_READ, "pi-1"),
        ("GET", "/v1/devices/pi-1/transitions", Kind.DEVICE_READ, "pi-1"),
        ("GET", "/v1/devices/pi-1/uptime", Kind.DEVICE_READ, "pi-1"),
        ("POST", "/v1/devices/pi-1/uptime", Kind.ADMIN, "pi-1"),
        ("GET", "/v1/uptime", Kind.READ, None),
        ("PUT", "/v1/devices/pi-1", Kind.DEVICE_WRITE, "pi-1"),
        ("DELETE", "/v1/devices/pi-1", Kind.DEVICE_WRITE, "pi-1"),
        ("POST", "/v1/devices/pi-1", Kind.ADMIN, "pi-1"),
        ("POST", "/v1/devices/pi-1/token", Kind.ADMIN, "pi-1"),
        ("GET", "/v1/devices", Kind.READ, None),
        ("GET", "/v1/events", Kind.READ, None),
        ("GET", "/v1/stream", Kind.STREAM, None),
        ("GET", "/v1/ws", Kind.STREAM, None),
        ("GET", "/v1/keys", Kind.ADMIN, None),
        ("POST", "/v1/keys", Kind.ADMIN, None),
        ("DELETE", "/v1/keys/abc", Kind.ADMIN, None),
        ("GET", "/v1/audit", Kind.ADMIN, None),
        ("GET", "/v1/something-new", Kind.ADMIN, None),
        ("POST", "/v1/devices", Kind.ADMIN, None),
    ],
)
def test_classify(method: str, path: str, kind: Kind, device: str | None) -> None:
    assert classify(method, path) == (kind, device)


ADMIN = Principal("a", "admin", Role.ADMIN)
READ = Principal("r", "dashboard", Role.READ)
INGEST = Principal("i", "gateway", Role.INGEST)
DEVICE = Principal("t", "token", Role.DEVICE, device_id="pi-1")

EXPECTED = {
    # kind: (admin, read, ingest, device on its own id)
    Kind.HEARTBEAT: (True, False, True, True),
    Kind.BATCH: (True, False, True, False),
    Kind.DEVICE_READ: (True, True, False, True),
    Kind.DEVICE_WRITE: (True, False, False, False),
    Kind.READ: (True, True, False, False),
    Kind.STREAM: (True, True, False, False),
    Kind.ADMIN: (True, False, False, False),
}


@pytest.mark.parametrize("kind", list(Kind))
def test_each_role_may_do_exactly_its_part(kind: Kind) -> None:
    got = tuple(allows(p, kind, "pi-1") for p in (ADMIN, READ, INGEST, DEVICE))
    assert got == EXPECTED[kind]


@pytest.mark.parametrize("kind", list(Kind))
def test_a_device_token_never_reaches_another_device(kind: Kind) -> None:
    assert not allows(DEVICE, kind, "pi-2")
    assert not allows(DEVICE, kind, None)
