"""The ingest fast path answers exactly as the full middleware stack does.

Two hubs on the same manual clock get the same requests, one with the fast path
(``app.ingest``) and one without: statuses, headers, bodies, the rejection counters
and the hot state must be identical, refusals included.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lastseen.clock import ManualClock
from lastseen.http.app import create_app
from lastseen.hub.core import Hub
from lastseen.presence import Profile, ProfileRegistry
from lastseen.security import Role
from lastseen.settings import Settings
from lastseen.store import SQLiteStore

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0
ADMIN = "lsk_000000000000_" + "a" * 43

Request = tuple[str, str, bytes | None, dict[str, str]]


def _settings(**overrides: Any) -> Settings:
    profiles = ProfileRegistry(
        [
            Profile(stale_after=40.0, offline_after=300.0),
            Profile(name="limited", min_interval=10.0, max_per_minute=3),
        ]
    )
    values: dict[str, Any] = {
        "profiles": profiles,
        "flush_interval": 3600.0,
        "key_refresh": 3600.0,
        "max_batch": 5,
        **overrides,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def _client(
    tmp: Path, fast: bool, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Hub, dict[str, str]]]:
    clock = ManualClock(T0)
    hub = Hub(_settings(**overrides), SQLiteStore(tmp / ("fast.db" if fast else "slow.db")), clock)
    app = create_app(hub)
    if not fast:
        app.ingest = None
    async with app.router.lifespan_context(app):
        keys: dict[str, str] = {}
        if not hub.settings.open:
            security = app.state.security
            created = await security.keyring.create(Role.INGEST, "ingest", created_by="test")
            assert created is not None
            keys["ingest"] = created[1]
            created = await security.keyring.create(Role.READ, "read", created_by="test")
            assert created is not None
            keys["read"] = created[1]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            yield client, hub, keys


def _batch(*items: Any) -> bytes:
    return orjson.dumps({"heartbeats": list(items)})


def _key_id(secret: str) -> str:
    return secret.split("_")[1]


async def _run(tmp: Path, fast: bool, requests: list[Request], **overrides: Any) -> Any:
    async with _client(tmp, fast, **overrides) as (client, hub, keys):
        answers = []
        for method, path, body, headers in requests:
            headers = {
                name: (keys.get(value, value) if name == "authorization-role" else value)
                for name, value in headers.items()
            }
            role = headers.pop("authorization-role", None)
            if role is not None:
                headers["authorization"] = f"Bearer {role}"
            answer = await client.request(method, path, content=body, headers=headers)
            body_out = answer.content
            if answer.headers.get("content-type") == "application/json":
                body_out = orjson.loads(body_out)
                # Key ids differ between the two hubs; everything else must not.
                for secret in keys.values():
                    body_out = orjson.loads(
                        orjson.dumps(body_out).replace(_key_id(secret).encode(), b"KEY")
                    )
            answers.append((answer.status_code, dict(answer.headers), body_out))
        state = {d: (e.state, dict(e.attributes), dict(e.metrics)) for d, e in hub.entries.items()}
        return answers, dict(hub.metrics.rejected.values), state, hub.seq


JSON = {"content-type": "application/json"}
OPEN_REQUESTS: list[Request] = [
    ("POST", "/v1/devices/a/heartbeat", None, {}),
    ("POST", "/v1/devices/a/heartbeat", None, {}),
    ("POST", "/v1/devices/a/heartbeat", b'{"attributes": {"fw": "1.2"}}', JSON),
    ("POST", "/v1/devices/a/heartbeat", b'{"metrics": {"cpu": 0.5}}', JSON),
    ("POST", "/v1/devices/a/heartbeat", b'{"attributs": {}}', JSON),
    ("POST", "/v1/devices/a/heartbeat", b"{not json", JSON),
    ("POST", "/v1/devices/a/heartbeat", b"null", JSON),
    ("POST", "/v1/devices/a/heartbeat", b"[1]", JSON),
    ("POST", "/v1/devices/a/heartbeat", b'{"metrics": {"cpu": "high"}}', JSON),
    ("POST", "/v1/devices/bad%20id/heartbeat", None, {}),
    ("POST", "/v1/devices/" + "x" * 129 + "/heartbeat", None, {}),
    ("POST", "/v1/devices//heartbeat", None, {}),
    ("POST", "/v1/devices/a/b/heartbeat", None, {}),
    ("GET", "/v1/devices/a/heartbeat", None, {}),
    ("POST", "/v1/devices/a/heartbeat?x=1&x=2", None, {}),
    ("POST", "/v1/devices/a/heartbeat", b"x" * 70_000, JSON),
    ("POST", "/v1/heartbeats", _batch({"device_id": "a"}, {"device_id": "b"}), JSON),
    (
        "POST",
        "/v1/heartbeats",
        _batch(
            {"device_id": "c", "attributes": {"k": 1}},
            {"device_id": 7},
            "not an object",
            {"device_id": "bad id"},
            {"device_id": "d", "extra": 1},
        ),
        JSON,
    ),
    ("POST", "/v1/heartbeats", _batch(*({"device_id": f"e{i}"} for i in range(6))), JSON),
    ("POST", "/v1/heartbeats", b'{"heartbeats": {}}', JSON),
    ("POST", "/v1/heartbeats", b'{"heartbeats": [], "x": 1}', JSON),
    ("POST", "/v1/heartbeats", b"", JSON),
    ("POST", "/v1/heartbeats/", _batch({"device_id": "a"}), JSON),
    ("GET", "/v1/heartbeats", None, {}),
]


async def test_open_hub_answers_alike(tmp_path: Path) -> None:
    fast = await _run(tmp_path, True, OPEN_REQUESTS, open=True, max_body=65_536)
    slow = await _run(tmp_path, False, OPEN_REQUESTS, open=True, max_body=65_536)
    assert fast == slow
    answers, rejected, _, _ = fast
    assert [status for status, _, _ in answers][:4] == [200, 200, 200, 200]
    assert rejected  # the refusals above were counted, on both paths alike


def _keyed(role: str | None) -> dict[str, str]:
    return {} if role is None else {"authorization-role": role}


KEYED_REQUESTS: list[Request] = [
    ("POST", "/v1/devices/a/heartbeat", None, _keyed(None)),
    ("POST", "/v1/devices/a/heartbeat", None, {"authorization": "Bearer nope"}),
    ("POST", "/v1/devices/a/heartbeat", None, {"authorization": "Basic abc"}),
    ("POST", "/v1/devices/a/heartbeat", None, _keyed("read")),
    ("POST", "/v1/devices/a/heartbeat", None, _keyed("ingest")),
    ("POST", "/v1/devices/a/heartbeat", None, _keyed(ADMIN)),
    ("PUT", "/v1/devices/lim", b'{"profile": "limited"}', {**_keyed(ADMIN), **JSON}),
    ("POST", "/v1/devices/lim/heartbeat", None, _keyed("ingest")),
    ("POST", "/v1/devices/lim/heartbeat", b'{"attributes": {"a": 1}}', _keyed("ingest")),
    ("POST", "/v1/heartbeats", _batch({"device_id": "lim"}, {"device_id": "z"}), _keyed("ingest")),
    ("POST", "/v1/heartbeats", _batch({"device_id": "a"}), _keyed("read")),
    ("POST", "/v1/heartbeats", _batch({"device_id": "a"}), _keyed(None)),
]


@pytest.mark.parametrize("register", [True, False])
async def test_keyed_hub_answers_alike(tmp_path: Path, register: bool) -> None:
    overrides = {"admin_key": ADMIN, "ingest_register": register}
    fast = await _run(tmp_path, True, KEYED_REQUESTS, **overrides)
    slow = await _run(tmp_path, False, KEYED_REQUESTS, **overrides)
    assert fast == slow
    statuses = [status for status, _, _ in fast[0]]
    assert statuses[:4] == [401, 401, 401, 403]
    assert 429 in statuses


async def test_a_cors_hub_takes_the_full_stack(tmp_path: Path) -> None:
    origin = {"origin": "https://dash.example"}
    requests: list[Request] = [
        ("POST", "/v1/devices/a/heartbeat", None, origin),
        ("POST", "/v1/heartbeats", _batch({"device_id": "a"}), {**origin, **JSON}),
        ("POST", "/v1/devices/a/heartbeat", None, {}),
    ]
    overrides = {"open": True, "cors_origin": ("https://dash.example",)}
    fast = await _run(tmp_path, True, requests, **overrides)
    slow = await _run(tmp_path, False, requests, **overrides)
    assert fast == slow
    assert fast[0][0][1]["access-control-allow-origin"] == "https://dash.example"
    assert fast[0][2][1]["vary"] == "Origin"
