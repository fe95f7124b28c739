"""Hypothesis fuzz of the heartbeat and batch parsers, alone and through the real app.

Properties, for any input at all:

* the validators either accept a value that is within every documented limit and
  that the store can encode, or refuse it with a stable code;
* the hub answers 200 or a 4xx ``{"code", "message"}``, never a 5xx;
* a refused request changes nothing (devices, their payloads, the seq);
* an accepted batch answers every item, in order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lastseen.errors import InvalidInput
from lastseen.http import validation as v
from lastseen.http.app import create_app
from lastseen.hub.core import Hub
from lastseen.presence import Profile, ProfileRegistry
from lastseen.settings import Settings
from lastseen.store import SQLiteStore

EXAMPLES = 300
CODES = {
    "invalid_attributes",
    "invalid_metrics",
    "too_deep",
    "too_many_keys",
    "key_too_long",
    "too_many_items",
    "value_too_long",
}

scalars = (
    st.none()
    | st.booleans()
    # What JSON can carry into the hub as an integer (larger ones parse as floats).
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=40,
)
# Shapes near the limits, which random values rarely reach.
near_limits = st.one_of(
    st.integers(v.MAX_DEPTH - 1, v.MAX_DEPTH + 1).map(lambda d: _nest(d)),
    st.integers(v.MAX_KEYS - 1, v.MAX_KEYS + 1).map(lambda n: {f"k{i}": i for i in range(n)}),
    st.integers(v.MAX_ITEMS - 1, v.MAX_ITEMS + 1).map(lambda n: {"a": list(range(n))}),
    st.integers(v.MAX_STRING - 1, v.MAX_STRING + 1).map(lambda n: {"s": "é" * n}),
    st.integers(v.MAX_KEY_LENGTH - 1, v.MAX_KEY_LENGTH + 1).map(lambda n: {"k" * n: 1}),
    # Many values in all, each container within its own limits.
    st.integers(15, 25).map(lambda n: {"wide": [[0] * 200] * n}),
)


def _nest(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(c) for c in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(c) for c in value), default=0)
    return 0


def _within_limits(value: Any) -> bool:
    """A naive, recursive statement of the limits, to hold the real checker to."""
    count = 0

    def walk(item: Any) -> bool:
        nonlocal count
        count += 1
        if isinstance(item, str):
            return len(item) <= v.MAX_STRING
        if isinstance(item, dict):
            return (
                len(item) <= v.MAX_KEYS
                and all(len(k) <= v.MAX_KEY_LENGTH for k in item)
                and all(walk(c) for c in item.values())
            )
        if isinstance(item, list):
            return len(item) <= v.MAX_ITEMS and all(walk(c) for c in item)
        return True

    return walk(value) and count <= v.MAX_VALUES and _depth(value) <= v.MAX_DEPTH


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, near_limits))
def test_attributes_are_accepted_exactly_within_the_limits(value: Any) -> None:
    try:
        accepted = v.attributes(value)
    except InvalidInput as exc:
        refused = exc.code
    else:
        assert accepted is value
        assert value is None or (isinstance(value, dict) and _within_limits(value))
        assert orjson.loads(orjson.dumps(value)) == value  # the store can keep it
        return
    assert refused in CODES
    assert value is not None
    assert not (isinstance(value, dict) and _within_limits(value))


@settings(max_examples=EXAMPLES, deadline=None)
@given(json_values)
def test_metrics_are_finite_numbers_under_short_keys(value: Any) -> None:
    try:
        accepted = v.metrics(value)
    except InvalidInput as exc:
        refused = exc.code
    else:
        if accepted is not None:
            assert len(accepted) <= v.MAX_KEYS
            for key, number in accepted.items():
                assert len(key) <= v.MAX_KEY_LENGTH
                assert isinstance(number, int | float)
                assert not isinstance(number, bool)
                assert math.isfinite(number)
        return
    assert refused in CODES


# --- through the app ------------------------------------------------------------------


@dataclass
class Live:
    portal: BlockingPortal
    client: httpx.AsyncClient
    hub: Hub

    def post(self, path: str, content: bytes) -> httpx.Response:
        response: httpx.Response = self.portal.call(lambda: self.client.post(path, content=content))
        return response

    def state(self) -> tuple[int, dict[str, Any]]:
        return self.hub.seq, {
            device_id: (entry.state, dict(entry.attributes), dict(entry.metrics))
            for device_id, entry in self.hub.entries.items()
        }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "hub.db"
    profiles = ProfileRegistry([Profile(), Profile(name="limited", min_interval=5.0)])
    hub = Hub(
        Settings(open=True, profiles=profiles, max_body=64 * 1024, max_batch=20),
        SQLiteStore(path),
    )
    app = create_app(hub)
    with start_blocking_portal() as portal:
        lifespan = app.router.lifespan_context(app)
        portal.call(lifespan.__aenter__)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")
        try:
            yield Live(portal, client, hub)
        finally:
            portal.call(client.aclose)
            portal.call(lifespan.__aexit__, None, None, None)


valid_ids = st.from_regex(r"[A-Za-z0-9._:@-]{1,24}", fullmatch=True)
any_ids = valid_ids | st.text(max_size=30)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "attributes": st.one_of(json_values, near_limits),
        "metrics": st.one_of(
            json_values, st.dictionaries(st.text(max_size=140), st.floats(), max_size=5)
        ),
        "extra": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b'{"attributes": {"big": 1' + b"0" * 40 + b"}}",
            b'{"metrics": {"t": 1e999}}',
            b'{"attributes": {"s": "\\ud800"}}',
            b'{"attributes": {"a": 1, "a": {"b": 2}}}',
            b"[" * 10_000,
            b'{"attributes":' * 5000,
        ]
    ),
    json_values.map(orjson.dumps),
    payloads.map(orjson.dumps),
    st.just(b""),
    st.just(b"null"),
)


def _refusal(answer: httpx.Response) -> None:
    assert answer.status_code in (400, 404, 405, 413), answer.text
    body = answer.json()
    assert set(body) == {"code", "message"}
    assert isinstance(body["code"], str)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(device_id=any_ids, body=bodies)
def test_a_heartbeat_is_applied_whole_or_refused_changing_nothing(
    live: Live, device_id: str, body: bytes
) -> None:
    before = live.state()
    answer = live.post(f"/v1/devices/{quote(device_id, safe='')}/heartbeat", body)
    assert answer.status_code < 500, answer.text
    if answer.status_code != 200:
        _refusal(answer)
        assert live.state() == before
        return
    assert answer.json()["device_id"] == device_id
    entry = live.hub.entries[device_id]
    sent = orjson.loads(body) if body.strip() else {}
    for key, value in (sent.get("attributes") or {}).items():
        assert entry.attributes[key] == value
    if sent.get("metrics"):
        assert dict(entry.metrics) == sent["metrics"]


items = st.one_of(
    st.builds(lambda i, p: {"device_id": i, **p}, any_ids, payloads),
    json_values,
)
batches = st.one_of(
    st.lists(items, max_size=25).map(lambda hs: orjson.dumps({"heartbeats": hs})),
    st.builds(
        lambda hs, x: orjson.dumps({"heartbeats": hs, **x}),
        st.lists(items, max_size=3),
        st.dictionaries(st.text(max_size=5), json_values, max_size=2),
    ),
    bodies,
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=batches)
def test_a_batch_answers_every_item_in_order_or_is_refused_whole(live: Live, body: bytes) -> None:
    before = live.state()
    answer = live.post("/v1/heartbeats", body)
    assert answer.status_code < 500, answer.text
    if answer.status_code != 200:
        _refusal(answer)
        assert live.state() == before
        return
    sent = orjson.loads(body)["heartbeats"]
    result = answer.json()
    assert len(result["results"]) == len(sent)
    assert result["accepted"] + result["rejected"] == len(sent)
    for item, slot in zip(sent, result["results"], strict=True):
        if "error" in slot:
            assert set(slot["error"]) == {"code", "message"}
        else:
            assert slot["device_id"] == item["device_id"]
            assert slot["device_id"] in live.hub.entries
