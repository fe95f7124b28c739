"""Every input limit: a stable code, a JSON error, a count in /metrics, nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from lastseen.http import validation as v
from tests.http.conftest import T0, AppFactory, Running

pytestmark = pytest.mark.anyio

MAX_BODY = 8192


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    # (name, method, path, request kwargs, status, code)
    ("declared too large", "POST", "/v1/devices/d/heartbeat",
     {"content": b"{}", "headers": {"content-length": str(MAX_BODY + 1)}}, 413,
     "payload_too_large"),
    ("too large", "POST", "/v1/devices/d/heartbeat",
     {"json": {"attributes": {"a": "x" * MAX_BODY}}}, 413, "payload_too_large"),
    ("batch too large", "POST", "/v1/heartbeats",
     {"json": {"heartbeats": [{"device_id": "x" * 100}] * 80}}, 413, "payload_too_large"),
    ("put too large", "PUT", "/v1/devices/d", {"json": {"labels": {"a": "b" * MAX_BODY}}}, 413,
     "payload_too_large"),
    ("not json", "POST", "/v1/devices/d/heartbeat", {"content": b"{nope"}, 400, "invalid_json"),
    ("bad utf-8", "POST", "/v1/devices/d/heartbeat", {"content": b'{"a": "\xff"}'}, 400,
     "invalid_json"),
    ("lone surrogate", "POST", "/v1/devices/d/heartbeat",
     {"content": b'{"attributes": {"a": "\\ud800"}}'}, 400, "invalid_json"),
    ("NaN", "POST", "/v1/devices/d/heartbeat", {"content": b'{"metrics": {"t": NaN}}'}, 400,
     "invalid_json"),
    ("bad length", "POST", "/v1/devices/d/heartbeat",
     {"content": b"{}", "headers": {"content-length": "lots"}}, 400, "invalid_body"),
    ("array body", "POST", "/v1/devices/d/heartbeat", {"json": [1]}, 400, "invalid_body"),
    ("unknown field", "POST", "/v1/devices/d/heartbeat", {"json": {"attributs": {}}}, 400,
     "unknown_field"),
    ("attributes not object", "POST", "/v1/devices/d/heartbeat", {"json": {"attributes": [1]}},
     400, "invalid_attributes"),
    ("too deep", "POST", "/v1/devices/d/heartbeat",
     {"json": {"attributes": nested(v.MAX_DEPTH + 1)}}, 400, "too_deep"),
    ("too deep in arrays", "POST", "/v1/devices/d/heartbeat",
     {"json": {"attributes": {"a": [[[[[[[[1]]]]]]]]}}}, 400, "too_deep"),
    ("too many keys", "POST", "/v1/devices/d/heartbeat",
     {"json": {"attributes": {f"k{i}": 0 for i in range(v.MAX_KEYS + 1)}}}, 400,
     "too_many_keys"),
    ("too many nested keys", "POST", "/v1/devices/d/heartbeat",
     {"json": {"attributes": {"n": {f"k{i}": 0 for i in range(v.MAX_KEYS + 1)}}}}, 400,
     "too_many_keys"),
    ("key too long", "POST", "/v1/devices/d/heartbeat",
     {"json": {"attributes": {"n": {"k" * (v.MAX_KEY_LENGTH + 1): 0}}}}, 400, "key_too_long"),
    ("array too long", "POST", "/v1/devices/d/heartbeat",
     {"json": {"attributes": {"a": [0] * (v.MAX_ITEMS + 1)}}}, 400, "too_many_items"),
    ("string too long", "POST", "/v1/devices/d/heartbeat",
     {"json": {"attributes": {"a": "x" * (v.MAX_STRING + 1)}}}, 400, "value_too_long"),
    ("metric not a number", "POST", "/v1/devices/d/heartbeat", {"json": {"metrics": {"t": "1"}}},
     400, "invalid_metrics"),
    ("metric boolean", "POST", "/v1/devices/d/heartbeat", {"json": {"metrics": {"t": True}}},
     400, "invalid_metrics"),
    ("metric key too long", "POST", "/v1/devices/d/heartbeat",
     {"json": {"metrics": {"m" * 129: 1}}}, 400, "key_too_long"),
    ("id charset", "POST", "/v1/devices/d%20x/heartbeat", {}, 400, "invalid_device_id"),
    ("id unicode", "POST", "/v1/devices/d%C3%A9/heartbeat", {}, 400, "invalid_device_id"),
    ("id too long", "POST", f"/v1/devices/{'d' * 129}/heartbeat", {}, 400, "invalid_device_id"),
    ("put id charset", "PUT", "/v1/devices/a%2Cb", {}, 400, "invalid_device_id"),
    ("batch not a list", "POST", "/v1/heartbeats", {"json": {"heartbeats": {}}}, 400,
     "invalid_body"),
    ("batch unknown field", "POST", "/v1/heartbeats", {"json": {"heartbeats": [], "x": 1}}, 400,
     "unknown_field"),
    ("batch over cap", "POST", "/v1/heartbeats",
     {"json": {"heartbeats": [{"device_id": "a"}] * 11}}, 400, "batch_too_large"),
    ("labels not strings", "PUT", "/v1/devices/d", {"json": {"labels": {"a": 1}}}, 400,
     "invalid_labels"),
    ("label key colon", "PUT", "/v1/devices/d", {"json": {"labels": {"a:b": "c"}}}, 400,
     "invalid_labels"),
    ("label NUL", "PUT", "/v1/devices/d", {"json": {"labels": {"a": "b\x00"}}}, 400,
     "invalid_labels"),
    ("unknown profile", "PUT", "/v1/devices/d", {"json": {"profile": "nope"}}, 400,
     "unknown_profile"),
    ("put unknown field", "PUT", "/v1/devices/d", {"json": {"colour": "red"}}, 400,
     "unknown_field"),
    ("limit zero", "GET", "/v1/devices?limit=0", {}, 400, "invalid_parameter"),
    ("limit huge", "GET", "/v1/events?limit=100000", {}, 400, "invalid_parameter"),
    ("bad status", "GET", "/v1/devices?status=asleep", {}, 400, "invalid_status"),
    ("bad cursor", "GET", "/v1/devices?after=a%20b", {}, 400, "invalid_device_id"),
    ("bad key role", "POST", "/v1/keys", {"json": {"role": "root", "name": "x"}}, 400,
     "invalid_key"),
    ("key unknown field", "POST", "/v1/keys", {"json": {"role": "read", "name": "x", "y": 1}},
     400, "unknown_field"),
    ("bad audit order", "GET", "/v1/audit?order=sideways", {}, 400, "invalid_parameter"),
    ("repeated parameter", "GET", "/v1/events?after=0&after=5", {}, 400, "invalid_parameter"),
    ("repeated status", "GET", "/v1/devices?status=online&status=", {}, 400, "invalid_parameter"),
    ("not canonical", "GET", "/v1/events?after=007", {}, 400, "invalid_parameter"),
    ("too many digits", "GET", "/v1/events?after=1234567890123456", {}, 400,
     "invalid_parameter"),
    ("signed", "GET", "/v1/events?after=+5", {}, 400, "invalid_parameter"),
    ("beyond sqlite", "GET", f"/v1/devices/d/transitions?after={'9' * 30}", {}, 400,
     "invalid_parameter"),
    ("null body", "PUT", "/v1/devices/d", {"content": b"null"}, 400, "invalid_body"),
    ("unknown route", "GET", "/v1/nothing-here", {}, 404, "not_found"),
    ("wrong method", "PATCH", "/v1/devices/d", {}, 405, "method_not_allowed"),
]  # fmt: skip


@pytest.fixture
async def limited(make_app: AppFactory) -> Running:
    running = await make_app(max_body=MAX_BODY, max_batch=10)
    async with running.admin_client() as admin:
        await admin.post("/v1/devices/d/heartbeat", json={"attributes": {"fw": "1"}})
    return running


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_each_limit_refuses_with_its_code_and_changes_nothing(
    limited: Running, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    before = limited.state()
    counted = limited.rejected(code)
    async with limited.admin_client() as admin:
        answer = await admin.request(method, path, **kwargs)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == code
    assert body["message"]
    assert limited.rejected(code) == counted + 1
    assert limited.state() == before


async def test_a_chunked_body_is_cut_off_at_the_limit(limited: Running) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"attributes": {"a": "'
        for _ in range(1000):
            sent += 1024
            yield b"x" * 1024

    before = limited.state()
    async with limited.admin_client() as admin:
        answer = await admin.post("/v1/devices/d/heartbeat", content=endless())
    assert answer.status_code == 413
    assert limited.state() == before


async def test_attributes_at_every_limit_are_accepted_and_storable(make_app: AppFactory) -> None:
    running = await make_app()
    attributes: dict[str, Any] = {
        "deep": nested(v.MAX_DEPTH - 1),
        "list": list(range(v.MAX_ITEMS)),
        "text": "é" * v.MAX_STRING,
        "k" * v.MAX_KEY_LENGTH: None,
        "big": 18446744073709551615,
        "small": -1.5e-300,
        "flags": [True, False, None],
    }
    async with running.admin_client() as admin:
        answer = await admin.post("/v1/devices/d/heartbeat", json={"attributes": attributes})
        assert answer.status_code == 200, answer.text
        shown = (await admin.get("/v1/devices/d")).json()["attributes"]
    assert shown == orjson.loads(orjson.dumps(attributes))
    record = running.hub.record("d", running.hub.entries["d"])
    orjson.dumps(dict(record.attributes))  # the store can encode what was accepted


async def test_device_supplied_times_never_decide_anything(running: Running) -> None:
    claims = {"last_seen": "2099-01-01T00:00:00.000Z", "ts": 4102444800, "seq": 10**9}
    async with running.admin_client() as admin:
        answer = await admin.post("/v1/devices/d/heartbeat", json={"attributes": claims})
    body = answer.json()
    assert body["last_seen"] == body["status_since"] == "2027-01-15T08:00:00.000Z"
    entry = running.hub.entries["d"]
    assert entry.state.last_seen == T0
    assert running.hub.seq == 1


async def test_a_device_cannot_grow_its_attributes_without_bound(running: Running) -> None:
    async with running.admin_client() as admin:
        for n in range(4):
            fresh = {f"k{n}-{i}": 0 for i in range(v.MAX_KEYS)}
            await admin.post("/v1/devices/d/heartbeat", json={"attributes": fresh})
    assert len(running.hub.entries["d"].attributes) <= v.MAX_KEYS
