"""Key and token routes: created once, never shown again, revoked for good."""

from __future__ import annotations

import pytest

from tests.http.conftest import AppFactory, Running

pytestmark = pytest.mark.anyio


async def test_create_list_revoke(running: Running) -> None:
    async with running.admin_client() as admin:
        created = await admin.post(
            "/v1/keys", json={"role": "read", "name": "wall display", "max_per_minute": 60}
        )
        assert created.status_code == 201
        key = created.json()
        assert key["secret"].startswith(f"lsk_{key['id']}_")
        assert (key["role"], key["name"], key["max_per_minute"], key["active"]) == (
            "read",
            "wall display",
            60,
            True,
        )
        listed = (await admin.get("/v1/keys")).json()["keys"]
        assert [k["id"] for k in listed] == [running.printed[0].id, key["id"]]
        assert all("secret" not in k and "digest" not in k for k in listed)
        revoked = await admin.delete(f"/v1/keys/{key['id']}")
        assert revoked.status_code == 200
        assert revoked.json()["active"] is False
        assert (await admin.delete("/v1/keys/000000000000")).status_code == 404
    async with running.client(key["secret"]) as client:
        assert (await client.get("/v1/devices")).status_code == 401


async def test_device_role_keys_come_only_from_the_token_route(running: Running) -> None:
    async with running.admin_client() as admin:
        answer = await admin.post("/v1/keys", json={"role": "device", "name": "x"})
    assert answer.status_code == 400


async def test_a_token_registers_its_device_and_rotation_revokes_the_old_one(
    running: Running,
) -> None:
    async with running.admin_client() as admin:
        first = (await admin.post("/v1/devices/pi-1/token")).json()
        assert "pi-1" in running.hub.entries
        second = (await admin.post("/v1/devices/pi-1/token", json={"name": "pi-1 v2"})).json()
    assert first["secret"].startswith("lsd_")
    assert second["revoked"] == [first["token"]["id"]]
    assert second["token"]["name"] == "pi-1 v2"
    async with running.client(first["secret"]) as old:
        assert (await old.post("/v1/devices/pi-1/heartbeat")).status_code == 401
    async with running.client(second["secret"]) as new:
        assert (await new.post("/v1/devices/pi-1/heartbeat")).status_code == 200


async def test_the_last_admin_key_is_kept(running: Running) -> None:
    async with running.admin_client() as admin:
        answer = await admin.delete(f"/v1/keys/{running.printed[0].id}")
    assert answer.status_code == 409
    assert answer.json()["code"] == "last_admin_key"


async def test_the_environment_key_is_listed_but_not_revocable(make_app: AppFactory) -> None:
    running = await make_app(admin_key="from-env")
    async with running.client("from-env") as admin:
        answer = await admin.delete("/v1/keys/env")
    assert answer.status_code == 409
    assert answer.json()["code"] == "key_not_revocable"
