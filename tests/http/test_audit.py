"""The audit log: who, when, what, from where; paging; retention; failure is loud."""

from __future__ import annotations

from typing import Any

import pytest

from lastseen.errors import StoreError
from lastseen.security import Role
from lastseen.store import AuditRecord
from tests.http.conftest import T0, AppFactory, Running

pytestmark = pytest.mark.anyio


async def _records(running: Running, **params: Any) -> list[dict[str, Any]]:
    async with running.admin_client() as admin:
        answer = await admin.get("/v1/audit", params={"limit": 1000, **params})
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()["records"]
    return records


async def test_startup_and_bootstrap_are_recorded(running: Running) -> None:
    records = await _records(running)
    assert [(r["action"], r["actor"]) for r in records] == [
        ("key.created", "system"),
        ("config.loaded", "system"),
    ]
    assert records[1]["details"]["auth"] == "keys"


async def test_device_changes_record_who_when_what_and_from_where(running: Running) -> None:
    read = await running.key(Role.READ)
    read_id = next(r.id for r in running.security.keyring.records.values() if r.role == "read")
    admin_id = running.printed[0].id
    async with running.admin_client() as admin:
        running.clock.advance(5.0)
        await admin.put("/v1/devices/pi-1", json={"labels": {"site": "north"}})
        await admin.put("/v1/devices/pi-1", json={"profile": "limited"})
        await admin.post("/v1/devices/pi-1/heartbeat")  # not an admin action
        await admin.put("/v1/devices/pi-1", json={"profile": "nope"})  # refused: not recorded
        await admin.delete("/v1/devices/pi-1")
        await admin.delete(f"/v1/keys/{read_id}")
    async with running.client(read) as client:
        await client.delete("/v1/devices/pi-2")  # refused: not recorded
    records = (await _records(running))[2:]
    assert [(r["action"], r["target"]) for r in records] == [
        ("device.created", "pi-1"),
        ("device.updated", "pi-1"),
        ("device.deleted", "pi-1"),
        ("key.revoked", read_id),
    ]
    first = records[0]
    assert first["actor"] == admin_id
    assert first["actor_name"] == "initial admin key"
    assert first["source"] == "203.0.113.7"
    assert first["at"] == "2027-01-15T08:00:05.000Z"
    assert first["details"] == {"labels": {"site": "north"}}
    assert records[1]["details"] == {"profile": "limited"}
    assert records[2]["details"] == {"tokens_revoked": []}


async def test_key_and_token_changes_are_recorded(running: Running) -> None:
    async with running.admin_client() as admin:
        created = (await admin.post("/v1/keys", json={"role": "ingest", "name": "gw"})).json()
        issued = (await admin.post("/v1/devices/pi-9/token")).json()
        rotated = (await admin.post("/v1/devices/pi-9/token")).json()
    records = (await _records(running))[2:]
    assert [(r["action"], r["target"]) for r in records] == [
        ("key.created", created["id"]),
        ("device.created", "pi-9"),
        ("token.issued", "pi-9"),
        ("token.issued", "pi-9"),
    ]
    assert records[0]["details"] == {"role": "ingest", "name": "gw"}
    assert records[3]["details"] == {
        "key_id": rotated["token"]["id"],
        "revoked": [issued["token"]["id"]],
    }
    assert all("secret" not in str(r) and "lsk_" not in str(r) for r in records)


async def test_paging_both_ways(running: Running) -> None:
    async with running.admin_client() as admin:
        for i in range(7):
            await admin.put(f"/v1/devices/d{i}")
        first = (await admin.get("/v1/audit", params={"limit": 4})).json()
        second = (await admin.get("/v1/audit", params={"limit": 4, **first["next"]})).json()
        newest = (await admin.get("/v1/audit", params={"limit": 3, "order": "desc"})).json()
        older = (await admin.get("/v1/audit", params={"limit": 3, **newest["next"]})).json()
    ids = [r["id"] for r in first["records"] + second["records"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 8
    assert second["next"] == {"after": ids[-1], "order": "asc"}
    down = [r["id"] for r in newest["records"] + older["records"]]
    assert down == sorted(down, reverse=True)
    assert [r["target"] for r in newest["records"]] == ["d6", "d5", "d4"]


async def test_retention_prunes_old_records(running: Running) -> None:
    store = running.hub.store
    await store.append_audit(AuditRecord(0, T0 - 400 * 86400, "x", "device.created", "old", "-"))
    assert await store.prune_audit(T0 - running.hub.settings.audit_retention) == 1
    assert "old" not in [r["target"] for r in await _records(running)]


async def test_an_unwritable_audit_log_fails_the_answer_loudly(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(record: AuditRecord) -> int:
        raise StoreError("disk full")

    monkeypatch.setattr(running.hub.store, "append_audit", broken)
    async with running.admin_client() as admin:
        answer = await admin.put("/v1/devices/pi-1", json={"labels": {"a": "b"}})
        created = await admin.post("/v1/keys", json={"role": "read", "name": "x"})
    assert answer.status_code == 503
    assert answer.json()["code"] == "audit_failed"
    assert created.status_code == 503


async def test_audit_is_admin_only(make_app: AppFactory) -> None:
    running = await make_app()
    read = await running.key(Role.READ)
    async with running.client(read) as client:
        assert (await client.get("/v1/audit")).status_code == 403
