"""Rate limits over HTTP: per device (profile) and per key, single and batched."""

from __future__ import annotations

import pytest

from lastseen.errors import Unavailable
from lastseen.presence import Profile, ProfileRegistry
from lastseen.security import Role
from tests.http.conftest import T0, AppFactory, Running

pytestmark = pytest.mark.anyio


async def _limited(running: Running, device_id: str) -> None:
    async with running.admin_client() as admin:
        answer = await admin.put(f"/v1/devices/{device_id}", json={"profile": "limited"})
    assert answer.status_code == 201


async def test_a_burst_is_throttled_but_the_device_stays_alive(running: Running) -> None:
    await _limited(running, "chatty")
    async with running.admin_client() as admin:
        first = await admin.post("/v1/devices/chatty/heartbeat", json={"attributes": {"n": 1}})
        assert first.status_code == 200
        answers = []
        for n in range(2, 7):
            running.clock.advance(1.0)
            answers.append(
                await admin.post("/v1/devices/chatty/heartbeat", json={"attributes": {"n": n}})
            )
    assert [a.status_code for a in answers] == [429] * 5
    assert [a.headers["retry-after"] for a in answers] == ["9", "8", "7", "6", "5"]
    assert {a.json()["code"] for a in answers} == {"rate_limited"}
    entry = running.hub.entries["chatty"]
    # Liveness recorded at the last refused beat; the payloads were not processed.
    assert entry.state.last_seen == T0 + 5.0
    assert entry.state.status.value == "online"
    assert dict(entry.attributes) == {"n": 1}
    assert running.rejected("rate_limited") == 5


async def test_after_the_interval_the_payload_is_processed_again(running: Running) -> None:
    await _limited(running, "d")
    async with running.admin_client() as admin:
        await admin.post("/v1/devices/d/heartbeat", json={"attributes": {"n": 1}})
        running.clock.advance(9.9)
        assert (await admin.post("/v1/devices/d/heartbeat")).status_code == 429
        running.clock.advance(0.1)
        again = await admin.post("/v1/devices/d/heartbeat", json={"attributes": {"n": 2}})
    assert again.status_code == 200
    assert running.hub.entries["d"].attributes["n"] == 2


async def test_the_per_minute_cap_holds_across_a_minute(running: Running) -> None:
    await _limited(running, "d")  # 10 s apart and at most 3 a minute (one per 20 s)
    accepted = 0
    async with running.admin_client() as admin:
        for _ in range(12):  # one every 10 s for two minutes
            answer = await admin.post("/v1/devices/d/heartbeat")
            accepted += answer.status_code == 200
            running.clock.advance(10.0)
    # Bucket of 3 refilled one per 20 s: 0, 10, 20, 30, 40, then every 20 s. Never more
    # than the bucket plus the refill (3 + 110 / 20) over the two minutes.
    assert accepted == 8


async def test_devices_are_limited_independently_and_unlimited_profiles_not_at_all(
    running: Running,
) -> None:
    await _limited(running, "a")
    await _limited(running, "b")
    async with running.admin_client() as admin:
        assert (await admin.post("/v1/devices/a/heartbeat")).status_code == 200
        assert (await admin.post("/v1/devices/b/heartbeat")).status_code == 200
        for _ in range(20):
            assert (await admin.post("/v1/devices/free/heartbeat")).status_code == 200


async def test_a_throttled_unknown_id_is_never_registered(make_app: AppFactory) -> None:
    running = await make_app(key_max_per_minute=1)
    ingest = await running.key(Role.INGEST)
    async with running.client(ingest) as client:
        assert (await client.post("/v1/devices/one/heartbeat")).status_code == 200
        refused = await client.post("/v1/devices/two/heartbeat")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert set(running.hub.entries) == {"one"}


async def test_a_key_over_its_rate_is_refused_on_every_route(running: Running) -> None:
    read = await running.key(Role.READ, max_per_minute=2)
    async with running.client(read) as client:
        codes = [(await client.get("/v1/devices")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        running.clock.advance(30.0)
        assert (await client.get("/v1/events")).status_code == 200
    async with running.admin_client() as admin:  # other keys are unaffected
        assert (await admin.get("/v1/devices")).status_code == 200


async def test_batches_throttle_item_by_item(running: Running) -> None:
    await _limited(running, "slow")
    body = {
        "heartbeats": [
            {"device_id": "slow", "attributes": {"n": 1}},
            {"device_id": "fast", "attributes": {"n": 1}},
            {"device_id": "slow", "attributes": {"n": 2}},
            {"device_id": "bad id!"},
        ]
    }
    async with running.admin_client() as admin:
        answer = await admin.post("/v1/heartbeats", json=body)
    assert answer.status_code == 200
    result = answer.json()
    assert [r.get("throttled", False) for r in result["results"]] == [False, False, True, False]
    assert result["results"][3]["error"]["code"] == "invalid_device_id"
    assert (result["accepted"], result["rejected"], result["throttled"]) == (3, 1, 1)
    assert running.hub.entries["slow"].attributes == {"n": 1}
    assert running.hub.entries["fast"].attributes == {"n": 1}


async def test_an_unlimited_batch_is_passed_through_untouched(make_app: AppFactory) -> None:
    running = await make_app(profiles=ProfileRegistry([Profile()]))
    async with running.admin_client() as admin:
        for _ in range(3):
            answer = await admin.post(
                "/v1/heartbeats", json={"heartbeats": [{"device_id": "x"}, {"device_id": "x"}]}
            )
            assert answer.json()["accepted"] == 2
    assert "throttled" not in answer.json()


async def test_a_failing_store_answer_passes_through_a_rewritten_batch(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _limited(running, "slow")

    async def busy(*args: object, **kwargs: object) -> object:
        raise Unavailable("the store did not confirm the write in time", code="store_busy")

    monkeypatch.setattr(running.hub, "heartbeat_statuses", busy)
    body = {"heartbeats": [{"device_id": "slow"}, {"device_id": "slow"}]}
    async with running.admin_client() as admin:
        answer = await admin.post("/v1/heartbeats", json=body)
    assert answer.status_code == 503
    assert answer.json()["code"] == "store_busy"
