"""Every permission boundary, proven by a refusal that changes nothing."""

from __future__ import annotations

import httpx
import pytest

from lastseen.security import Role
from tests.http.conftest import AppFactory, Running

pytestmark = pytest.mark.anyio


async def test_first_start_bootstraps_one_admin_key(running: Running) -> None:
    assert running.admin is not None
    assert [r.role for r in running.printed] == ["admin"]
    async with running.admin_client() as admin:
        assert (await admin.get("/v1/keys")).status_code == 200


async def test_no_key_or_a_bad_key_is_401_and_changes_nothing(running: Running) -> None:
    before = running.state()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
        async with running.client() as anonymous:
            answer = await anonymous.post("/v1/devices/pi-1/heartbeat", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["code"] == "unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"
    assert running.state() == before
    assert running.rejected("unauthorized") == 3


async def test_operational_routes_need_no_key(running: Running) -> None:
    async with running.client() as anonymous:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            assert (await anonymous.get(path)).status_code == 200, path
        health = (await anonymous.get("/healthz")).json()
    assert health["auth"] == "keys"
    assert "warning" not in health


async def test_a_read_key_cannot_heartbeat_change_or_administer(running: Running) -> None:
    async with running.admin_client() as admin:
        await admin.put("/v1/devices/pi-1", json={"labels": {"site": "a"}})
    read = await running.key(Role.READ)
    before = running.state()
    async with running.client(read) as client:
        assert (await client.get("/v1/devices")).status_code == 200
        assert (await client.get("/v1/devices/pi-1")).status_code == 200
        assert (await client.get("/v1/devices/pi-1/transitions")).status_code == 200
        assert (await client.get("/v1/events")).status_code == 200
        refused = [
            await client.post("/v1/devices/pi-1/heartbeat"),
            await client.post("/v1/devices/new/heartbeat"),
            await client.post("/v1/heartbeats", json={"heartbeats": [{"device_id": "pi-1"}]}),
            await client.put("/v1/devices/pi-1", json={"labels": {}}),
            await client.delete("/v1/devices/pi-1"),
            await client.post("/v1/devices/pi-1/token"),
            await client.get("/v1/keys"),
            await client.post("/v1/keys", json={"role": "admin", "name": "escalate"}),
            await client.get("/v1/audit"),
        ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert {r.json()["code"] for r in refused} == {"forbidden"}
    assert running.state() == before
    assert len(running.security.keyring.records) == 2  # bootstrap + read: no escalation


async def test_an_ingest_key_beats_any_device_but_reads_nothing(running: Running) -> None:
    ingest = await running.key(Role.INGEST)
    async with running.client(ingest) as client:
        beat = await client.post("/v1/devices/gw-7/heartbeat", json={"metrics": {"t": 1}})
        assert beat.status_code == 200
        batch = await client.post("/v1/heartbeats", json={"heartbeats": [{"device_id": "gw-8"}]})
        assert batch.json()["accepted"] == 1
        before = running.state()
        refused = [
            await client.get("/v1/devices"),
            await client.get("/v1/devices/gw-7"),
            await client.get("/v1/events"),
            await client.get("/v1/stream"),
            await client.delete("/v1/devices/gw-7"),
            await client.put("/v1/devices/gw-7", json={"profile": "limited"}),
        ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert running.state() == before
    assert set(running.hub.entries) == {"gw-7", "gw-8"}


async def test_an_ingest_key_registers_only_when_the_config_allows(
    make_app: AppFactory,
) -> None:
    running = await make_app(ingest_register=False)
    async with running.admin_client() as admin:
        await admin.put("/v1/devices/known")
    ingest = await running.key(Role.INGEST)
    async with running.client(ingest) as client:
        before = running.state()
        unknown = await client.post("/v1/devices/stranger/heartbeat")
        assert unknown.status_code == 403
        assert unknown.json()["code"] == "registration_forbidden"
        assert running.state() == before
        assert (await client.post("/v1/devices/known/heartbeat")).status_code == 200
        batch = await client.post(
            "/v1/heartbeats",
            json={"heartbeats": [{"device_id": "stranger"}, {"device_id": "known"}, {"x": 1}]},
        )
    body = batch.json()
    assert [r.get("error", {}).get("code") for r in body["results"]] == [
        "registration_forbidden",
        None,
        "unknown_field",
    ]
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert "stranger" not in running.hub.entries


async def test_a_device_token_speaks_only_for_its_device(running: Running) -> None:
    async with running.admin_client() as admin:
        await admin.put("/v1/devices/neighbour", json={"labels": {"k": "v"}})
    token = await running.token("pi-1")
    async with running.client(token) as device:
        own = await device.post("/v1/devices/pi-1/heartbeat", json={"attributes": {"fw": "2"}})
        assert own.status_code == 200
        assert (await device.get("/v1/devices/pi-1")).json()["attributes"] == {"fw": "2"}
        before = running.state()
        refused = [
            await device.post("/v1/devices/neighbour/heartbeat"),
            await device.post("/v1/devices/brand-new/heartbeat"),
            await device.get("/v1/devices/neighbour"),
            await device.get("/v1/devices"),
            await device.post("/v1/heartbeats", json={"heartbeats": [{"device_id": "pi-1"}]}),
            await device.put("/v1/devices/pi-1", json={"profile": "limited"}),
            await device.delete("/v1/devices/pi-1"),
            await device.post("/v1/devices/pi-1/token"),
        ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert running.state() == before
    assert "brand-new" not in running.hub.entries


async def test_a_revoked_key_is_refused_on_the_next_request(running: Running) -> None:
    read = await running.key(Role.READ)
    key_id = next(r.id for r in running.security.keyring.records.values() if r.role == "read")
    async with running.client(read) as client:
        assert (await client.get("/v1/devices")).status_code == 200
        async with running.admin_client() as admin:
            assert (await admin.delete(f"/v1/keys/{key_id}")).status_code == 200
        assert (await client.get("/v1/devices")).status_code == 401


async def test_deleting_a_device_revokes_its_tokens(running: Running) -> None:
    token = await running.token("pi-1")
    async with running.admin_client() as admin:
        assert (await admin.delete("/v1/devices/pi-1")).status_code == 204
    async with running.client(token) as device:
        assert (await device.post("/v1/devices/pi-1/heartbeat")).status_code == 401
    assert "pi-1" not in running.hub.entries


async def test_a_query_token_works_on_stream_routes_only(running: Running) -> None:
    assert running.admin is not None
    async with running.client() as anonymous:
        listed = await anonymous.get("/v1/devices", params={"token": running.admin})
        assert listed.status_code == 401
        stream = await anonymous.get("/v1/stream", params={"token": "wrong"})
        assert stream.status_code == 401


async def test_the_environment_admin_key_does_everything(make_app: AppFactory) -> None:
    running = await make_app(admin_key="e2e-admin-key")
    assert running.printed == []  # no bootstrap key next to LASTSEEN_ADMIN_KEY
    async with running.client("e2e-admin-key") as admin:
        beat = await admin.post("/v1/devices/auto-1/heartbeat")
        assert beat.json()["status"] == "online"
        assert (await admin.get("/v1/devices/auto-1")).status_code == 200
        keys = (await admin.get("/v1/keys")).json()["keys"]
    assert [k["id"] for k in keys] == ["env"]


async def test_open_mode_needs_no_key_and_says_so(make_app: AppFactory) -> None:
    running = await make_app(open=True)
    assert running.printed == []
    async with running.client() as anonymous:
        assert (await anonymous.post("/v1/devices/pi/heartbeat")).status_code == 200
        assert (await anonymous.delete("/v1/devices/pi")).status_code == 204
        health = (await anonymous.get("/healthz")).json()
    assert health["auth"] == "open"
    assert "anyone" in health["warning"]
    assert await running.hub.store.load_keys() == []


@pytest.mark.parametrize(
    "path", ["//v1/devices", "/v1//devices", "/v1/devices/", "/v1/./devices", "/V1/devices"]
)
async def test_odd_paths_never_reach_the_api_without_a_key(running: Running, path: str) -> None:
    async with running.client() as anonymous:
        answer = await anonymous.get(path, follow_redirects=True)
    assert answer.status_code in (401, 404)


async def test_the_hot_path_never_reads_keys_from_the_store(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = await running.key(Role.INGEST)
    calls: list[str] = []
    store = running.hub.store
    for name in ("load_keys", "keys_version", "append_audit"):
        original = getattr(store, name)

        def counting(*args: object, _name: str = name, _original: object = original) -> object:
            calls.append(_name)
            return _original(*args)  # type: ignore[operator]

        monkeypatch.setattr(store, name, counting)
    async with running.client(ingest) as client:
        for _ in range(50):
            assert (await client.post("/v1/devices/d/heartbeat")).status_code == 200
    assert calls == []


async def test_metrics_show_keys_and_refusals(running: Running) -> None:
    await running.key(Role.READ)
    async with running.client() as anonymous:
        await anonymous.get("/v1/devices")
        text = (await anonymous.get("/metrics")).text
    assert 'lastseen_api_keys{role="admin"} 1' in text
    assert 'lastseen_api_keys{role="read"} 1' in text
    assert 'lastseen_rejected_total{code="unauthorized"} 1' in text
    assert 'lastseen_rate_limiter_subjects{scope="device"} 0' in text


async def test_a_bug_is_a_json_500_without_internals(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> object:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(running.hub, "list_devices", broken)
    transport = httpx.ASGITransport(app=running.app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {running.admin}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        answer = await client.get("/v1/devices", headers=headers)
    assert answer.status_code == 500
    assert answer.json() == {
        "code": "internal_error",
        "message": "the hub failed to handle this request",
    }
