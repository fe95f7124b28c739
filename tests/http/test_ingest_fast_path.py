"""The ingest fast path answers exactly as the full middleware stack does.

Two hubs on the same manual clock get the same requests, one with the fast path
(``app.ingest``) and one without: statuses, headers, bodies, the rejection counters
and the hot state must be identical, refusals included.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lastseen.clock import ManualClock
from lastseen.errors import Unavailable
from lastseen.http.app import create_app
from lastseen.http.heartbeat import Ingest, IngestApp
from lastseen.hub.core import Hub
from lastseen.presence import Profile, ProfileRegistry
from lastseen.security import Role
from lastseen.settings import Settings
from lastseen.store import SQLiteStore

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0
ADMIN = "lsk_000000000000_" + "a" * 43

#: method, path, body (a list of parts is sent chunked, without Content-Length), headers
Request = tuple[str, str, bytes | list[bytes] | None, dict[str, str]]


#: With a rate-limited profile every heartbeat crosses the guard (its device rate
#: must be looked up); without one most take the unguarded way.
LIMITED = ProfileRegistry(
    [
        Profile(stale_after=40.0, offline_after=300.0),
        Profile(name="limited", min_interval=10.0, max_per_minute=3),
    ]
)
UNLIMITED = ProfileRegistry([Profile(stale_after=40.0, offline_after=300.0)])


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "profiles": LIMITED,
        "flush_interval": 3600.0,
        "key_refresh": 3600.0,
        "max_batch": 5,
        **overrides,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def _client(
    tmp: Path, fast: bool, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Hub, dict[str, str], IngestApp]]:
    clock = ManualClock(T0)
    hub = Hub(_settings(**overrides), SQLiteStore(tmp / ("fast.db" if fast else "slow.db")), clock)
    app = create_app(hub)
    assert isinstance(app, IngestApp)
    if not fast:
        app.ingest = None
    async with app.router.lifespan_context(app):
        keys: dict[str, str] = {}
        if not hub.settings.open:
            security = app.state.security
            for name, role, extra in (
                ("ingest", Role.INGEST, {}),
                ("read", Role.READ, {}),
                ("device", Role.DEVICE, {"device_id": "a"}),
                ("rated", Role.INGEST, {"max_per_minute": 2}),
            ):
                created = await security.keyring.create(role, name, created_by="test", **extra)
                assert created is not None
                keys[name] = created[1]
        # A bug's 500 is compared too: the servers' re-raise is not the answer.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            yield client, hub, keys, app


def _batch(*items: Any) -> bytes:
    return orjson.dumps({"heartbeats": list(items)})


async def _parts(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _key_id(secret: str) -> str:
    return secret.split("_")[1]


@dataclass
class Outcome:
    """What a hub answered and became; ``taken`` (not compared) counts the requests
    each way of the fast path answered, so a test can tell it was exercised."""

    answers: list[tuple[int, dict[str, str], bytes]]
    rejected: dict[tuple[str, ...], float]
    state: dict[str, Any]
    seq: int
    taken: dict[str, int] = field(compare=False, default_factory=dict)


def _spy(ingest: Ingest, taken: dict[str, int]) -> None:
    beat, run = ingest.beat, ingest.run

    async def unguarded(*args: Any) -> None:
        taken["unguarded"] = taken.get("unguarded", 0) + 1
        await beat(*args)

    async def guarded(*args: Any) -> None:
        taken["guarded"] = taken.get("guarded", 0) + 1
        await run(*args)

    ingest.beat = unguarded  # type: ignore[method-assign]
    ingest.run = guarded  # type: ignore[method-assign]


async def _run(
    tmp: Path, fast: bool, requests: list[Request], hub_patch: Any = None, **overrides: Any
) -> Outcome:
    async with _client(tmp, fast, **overrides) as (client, hub, keys, app):
        taken: dict[str, int] = {}
        if app.ingest is not None:
            _spy(app.ingest, taken)
        if hub_patch is not None:
            hub_patch(hub)
        answers = []
        for method, path, body, headers in requests:
            headers = {
                name: (keys.get(value, value) if name == "authorization-role" else value)
                for name, value in headers.items()
            }
            role = headers.pop("authorization-role", None)
            if role is not None:
                headers["authorization"] = f"Bearer {role}"
            content = _parts(body) if isinstance(body, list) else body
            answer = await client.request(method, path, content=content, headers=headers)
            # The bytes as sent; key ids (random per hub) are the only thing that differs.
            raw = answer.content
            for secret in keys.values():
                raw = raw.replace(_key_id(secret).encode(), b"KEY")
            answers.append((answer.status_code, dict(answer.headers), raw))
        state = {d: (e.state, dict(e.attributes), dict(e.metrics)) for d, e in hub.entries.items()}
        return Outcome(answers, dict(hub.metrics.rejected.values), state, hub.seq, taken)


JSON = {"content-type": "application/json"}
ATTRS_200 = {f"k{i}": i for i in range(200)}
ATTRS_100 = {f"m{i}": i for i in range(100)}
DEEP = b'{"attributes": ' + b'{"a": ' * 10 + b"1" + b"}" * 10 + b"}"
OPEN_REQUESTS: list[Request] = [
    ("POST", "/v1/devices/a/heartbeat", None, {}),
    ("POST", "/v1/devices/a/heartbeat", None, {}),
    ("POST", "/v1/devices/new-1/heartbeat", None, {}),
    ("POST", "/v1/devices/A.z_0:9@-/heartbeat", None, {}),
    ("POST", "/v1/devices/" + "x" * 128 + "/heartbeat", None, {}),
    ("POST", "/v1/devices/a/heartbeat", b'{"attributes": {"fw": "1.2"}}', JSON),
    ("POST", "/v1/devices/a/heartbeat", b'{"metrics": {"cpu": 0.5}}', JSON),
    ("POST", "/v1/devices/a/heartbeat", b"{}", JSON),
    ("POST", "/v1/devices/a/heartbeat", b'{"attributes": null, "metrics": null}', JSON),
    ("POST", "/v1/devices/a/heartbeat", [b'{"attributes":', b' {"fw": "1.3"}}'], JSON),
    ("POST", "/v1/devices/a/heartbeat", [], {}),
    ("POST", "/v1/devices/a/heartbeat", [b"x" * 40_000, b"x" * 40_000], JSON),
    ("POST", "/v1/devices/a/heartbeat", None, {"content-length": "abc"}),
    ("POST", "/v1/devices/a/heartbeat", b'{"attributs": {}}', JSON),
    ("POST", "/v1/devices/a/heartbeat", b"{not json", JSON),
    ("POST", "/v1/devices/a/heartbeat", b"null", JSON),
    ("POST", "/v1/devices/a/heartbeat", b"[1]", JSON),
    ("POST", "/v1/devices/a/heartbeat", b'{"metrics": {"cpu": "high"}}', JSON),
    ("POST", "/v1/devices/a/heartbeat", b'{"metrics": [1]}', JSON),
    ("POST", "/v1/devices/a/heartbeat", DEEP, JSON),
    ("POST", "/v1/devices/big/heartbeat", orjson.dumps({"attributes": ATTRS_200}), JSON),
    ("POST", "/v1/devices/big/heartbeat", orjson.dumps({"attributes": ATTRS_100}), JSON),
    ("POST", "/v1/devices/bad%20id/heartbeat", None, {}),
    ("POST", "/v1/devices/%C3%A9/heartbeat", None, {}),
    ("POST", "/v1/devices/" + "x" * 129 + "/heartbeat", None, {}),
    ("POST", "/v1/devices//heartbeat", None, {}),
    ("POST", "/v1/devices/a/b/heartbeat", None, {}),
    ("GET", "/v1/devices/a/heartbeat", None, {}),
    ("POST", "/v1/devices/a/heartbeat?x=1", None, {}),
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
    # Refusals first, between and last, and one the hub refuses (attributes overflow).
    (
        "POST",
        "/v1/heartbeats",
        _batch(
            "x",
            {"device_id": "a"},
            {"device_id": "big", "attributes": ATTRS_100},
            {"device_id": "b", "metrics": {"t": "hot"}},
            None,
        ),
        JSON,
    ),
    ("POST", "/v1/heartbeats", _batch(5, {"device_id": "f", "metrics": {"t": 21.5}}), JSON),
    ("POST", "/v1/heartbeats", _batch(*({"device_id": f"e{i}"} for i in range(6))), JSON),
    ("POST", "/v1/heartbeats", _batch(), JSON),
    ("POST", "/v1/heartbeats", [b'{"heartbeats": [{"device_id":', b' "g"}]}'], JSON),
    ("POST", "/v1/heartbeats", b'{"heartbeats": {}}', JSON),
    ("POST", "/v1/heartbeats", b'{"heartbeats": [], "x": 1}', JSON),
    ("POST", "/v1/heartbeats", b"[]", JSON),
    ("POST", "/v1/heartbeats", b"", JSON),
    ("POST", "/v1/heartbeats/", _batch({"device_id": "a"}), JSON),
    ("GET", "/v1/heartbeats", None, {}),
]


@pytest.mark.parametrize("profiles", [LIMITED, UNLIMITED], ids=["limited", "unlimited"])
async def test_open_hub_answers_alike(tmp_path: Path, profiles: ProfileRegistry) -> None:
    overrides = {"open": True, "max_body": 65_536, "profiles": profiles}
    fast = await _run(tmp_path, True, OPEN_REQUESTS, **overrides)
    slow = await _run(tmp_path, False, OPEN_REQUESTS, **overrides)
    assert fast == slow
    statuses = [status for status, _, _ in fast.answers]
    assert statuses[:11] == [200] * 11
    assert {400, 413}.issubset(statuses)
    assert fast.rejected  # the refusals above were counted, on both paths alike
    if profiles is UNLIMITED:
        assert fast.taken["unguarded"] > 20
        assert fast.taken["guarded"] > 5  # the batches and the query strings
    else:
        assert "unguarded" not in fast.taken


def _keyed(role: str | None) -> dict[str, str]:
    return {} if role is None else {"authorization-role": role}


KEYED_REQUESTS: list[Request] = [
    ("POST", "/v1/devices/a/heartbeat", None, _keyed(None)),
    ("POST", "/v1/devices/a/heartbeat", None, {"authorization": "Bearer nope"}),
    ("POST", "/v1/devices/a/heartbeat", None, {"authorization": "Basic abc"}),
    ("POST", "/v1/devices/a/heartbeat", None, _keyed("read")),
    ("POST", "/v1/devices/a/heartbeat", None, _keyed(ADMIN)),  # registers it
    ("POST", "/v1/devices/a/heartbeat", None, _keyed("ingest")),
    ("POST", "/v1/devices/a/heartbeat", None, {"authorization": f"bearer   {ADMIN}  "}),
    ("POST", "/v1/devices/a/heartbeat", None, _keyed("device")),
    ("POST", "/v1/devices/b/heartbeat", None, _keyed("device")),
    ("POST", "/v1/devices/new-2/heartbeat", None, _keyed("ingest")),
    ("POST", "/v1/devices/a/heartbeat?x=1", None, _keyed("ingest")),
    ("POST", "/v1/devices/a/heartbeat", None, _keyed("rated")),
    ("POST", "/v1/devices/a/heartbeat", None, _keyed("rated")),
    ("POST", "/v1/devices/a/heartbeat", None, _keyed("rated")),
    ("PUT", "/v1/devices/lim", b'{"profile": "limited"}', {**_keyed(ADMIN), **JSON}),
    ("POST", "/v1/devices/lim/heartbeat", None, _keyed("ingest")),
    ("POST", "/v1/devices/lim/heartbeat", b'{"attributes": {"a": 1}}', _keyed("ingest")),
    ("POST", "/v1/heartbeats", _batch({"device_id": "lim"}, {"device_id": "z"}), _keyed("ingest")),
    ("POST", "/v1/heartbeats", _batch({"device_id": "a"}), _keyed("read")),
    ("POST", "/v1/heartbeats", _batch({"device_id": "a"}), _keyed("device")),
    ("POST", "/v1/heartbeats", _batch({"device_id": "a"}), _keyed(None)),
]


@pytest.mark.parametrize("profiles", [LIMITED, UNLIMITED], ids=["limited", "unlimited"])
@pytest.mark.parametrize("register", [True, False])
async def test_keyed_hub_answers_alike(
    tmp_path: Path, register: bool, profiles: ProfileRegistry
) -> None:
    overrides = {"admin_key": ADMIN, "ingest_register": register, "profiles": profiles}
    fast = await _run(tmp_path, True, KEYED_REQUESTS, **overrides)
    slow = await _run(tmp_path, False, KEYED_REQUESTS, **overrides)
    assert fast == slow
    statuses = [status for status, _, _ in fast.answers]
    assert statuses[:9] == [401, 401, 401, 403, 200, 200, 200, 200, 403]
    assert statuses[9] == (200 if register else 403)  # an unknown device, an ingest key
    assert statuses[11:14] == [200, 200, 429]  # the rated key: 2 a minute
    if profiles is UNLIMITED:
        assert fast.taken["unguarded"] >= 3  # admin and device keys; ingest ones if they register
    else:
        assert statuses[16] == 429  # the limited device


async def _broken(*args: object, **kwargs: object) -> object:
    raise RuntimeError("secret internals")


async def _busy(*args: object, **kwargs: object) -> object:
    raise Unavailable("the store did not confirm the write in time", code="store_busy")


@pytest.mark.parametrize("failure", [_broken, _busy])
async def test_a_failing_hub_answers_alike(tmp_path: Path, failure: Any) -> None:
    requests: list[Request] = [
        ("POST", "/v1/devices/a/heartbeat", None, {}),
        ("POST", "/v1/devices/a/heartbeat", b'{"attributes": {"fw": "1"}}', JSON),
        ("POST", "/v1/heartbeats", _batch({"device_id": "a"}), JSON),
    ]

    def patch(hub: Hub) -> None:
        hub.heartbeat = failure  # type: ignore[method-assign]
        hub.heartbeat_statuses = failure  # type: ignore[method-assign]

    overrides = {"open": True, "profiles": UNLIMITED}
    fast = await _run(tmp_path, True, requests, hub_patch=patch, **overrides)
    slow = await _run(tmp_path, False, requests, hub_patch=patch, **overrides)
    assert fast == slow
    expected = 500 if failure is _broken else 503
    assert [status for status, _, _ in fast.answers] == [expected] * 3
    assert b"secret" not in b"".join(body for _, _, body in fast.answers)
    assert fast.taken["unguarded"] == 2


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
    assert fast.answers[0][1]["access-control-allow-origin"] == "https://dash.example"
    assert fast.answers[2][1]["vary"] == "Origin"
    assert not fast.taken
