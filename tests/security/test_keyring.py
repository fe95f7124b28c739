"""The key ring: create, look up, revoke, refresh across processes, bootstrap."""

from __future__ import annotations

from pathlib import Path

import pytest

from lastseen.clock import ManualClock
from lastseen.errors import Conflict, InvalidInput, NotFound
from lastseen.security import ENV_KEY_ID, KeyRing, Rate, Role
from lastseen.store import SQLiteStore

pytestmark = pytest.mark.anyio


async def test_a_created_key_is_found_by_its_secret_only(
    store: SQLiteStore, clock: ManualClock
) -> None:
    ring = KeyRing(store, clock)
    created = await ring.create(Role.READ, "dashboard", created_by="test")
    assert created is not None
    record, secret = created
    principal = ring.lookup(secret.encode())
    assert principal is not None
    assert (principal.key_id, principal.role, principal.name) == (record.id, Role.READ, "dashboard")
    assert ring.lookup(secret.encode()[:-1] + b"x") is None
    assert ring.lookup(b"") is None
    assert ring.lookup(b"lsk_" + record.id.encode() + b"_guess") is None
    # The store has the digest, never the secret.
    (stored,) = await store.load_keys()
    assert secret.encode() not in stored.digest
    assert stored.created_at == clock.now()


async def test_revoked_keys_are_refused_at_once_and_reported(
    store: SQLiteStore, clock: ManualClock
) -> None:
    closed: list[str] = []
    ring = KeyRing(store, clock, on_revoked=closed.append)
    await ring.create(Role.ADMIN, "spare admin", created_by="test")
    created = await ring.create(Role.INGEST, "gateway", created_by="test")
    assert created is not None
    record, secret = created
    revoked = await ring.revoke(record.id)
    assert revoked.revoked_at == clock.now()
    assert ring.lookup(secret.encode()) is None
    assert closed == [record.id]
    with pytest.raises(NotFound):
        await ring.revoke("000000000000")


async def test_another_process_changes_are_picked_up_by_refresh(
    tmp_path: Path, store: SQLiteStore, clock: ManualClock
) -> None:
    closed: list[str] = []
    hub_ring = KeyRing(store, clock, on_revoked=closed.append)
    await hub_ring.load()
    assert not await hub_ring.refresh()
    other = SQLiteStore(tmp_path / "lastseen.db")  # e.g. `lastseen keys --data-dir`
    await other.open()
    try:
        cli_ring = KeyRing(other, clock)
        await cli_ring.load()
        await cli_ring.create(Role.ADMIN, "keep", created_by="cli")
        created = await cli_ring.create(Role.READ, "dash", created_by="cli")
        assert created is not None
        record, secret = created
        assert hub_ring.lookup(secret.encode()) is None  # not yet seen
        assert await hub_ring.refresh()
        assert hub_ring.lookup(secret.encode()) is not None
        await cli_ring.revoke(record.id)
        assert await hub_ring.refresh()
        assert hub_ring.lookup(secret.encode()) is None
        assert closed == [record.id]
    finally:
        await other.close()


async def test_bootstrap_creates_one_admin_key_ever(store: SQLiteStore, clock: ManualClock) -> None:
    ring = KeyRing(store, clock)
    await ring.load()
    first = await ring.bootstrap()
    assert first is not None
    record, secret = first
    assert (record.role, record.created_by) == ("admin", "bootstrap")
    again = KeyRing(store, clock)  # a restart
    await again.load()
    assert await again.bootstrap() is None
    principal = again.lookup(secret.encode())
    assert principal is not None
    assert principal.role is Role.ADMIN


async def test_the_environment_admin_key_needs_no_store_and_no_bootstrap(
    store: SQLiteStore, clock: ManualClock
) -> None:
    ring = KeyRing(store, clock, env_admin_key="e2e-admin-key")
    await ring.load()
    assert await ring.bootstrap() is None
    principal = ring.lookup(b"e2e-admin-key")
    assert principal is not None
    assert (principal.key_id, principal.role) == (ENV_KEY_ID, Role.ADMIN)
    assert ring.lookup(b"e2e-admin-keY") is None
    assert await store.load_keys() == []
    with pytest.raises(Conflict) as refused:
        await ring.revoke(ENV_KEY_ID)
    assert refused.value.code == "key_not_revocable"
    assert [k.id for k in ring.listing()] == [ENV_KEY_ID]


async def test_the_last_admin_key_cannot_be_revoked(store: SQLiteStore, clock: ManualClock) -> None:
    ring = KeyRing(store, clock)
    created = await ring.create(Role.ADMIN, "only", created_by="test")
    assert created is not None
    with pytest.raises(Conflict) as refused:
        await ring.revoke(created[0].id)
    assert refused.value.code == "last_admin_key"
    await ring.create(Role.ADMIN, "second", created_by="test")
    await ring.revoke(created[0].id)


async def test_device_tokens_belong_to_one_device(store: SQLiteStore, clock: ManualClock) -> None:
    ring = KeyRing(store, clock)
    with pytest.raises(InvalidInput):
        await ring.create(Role.DEVICE, "no device", created_by="test")
    with pytest.raises(InvalidInput):
        await ring.create(Role.READ, "with device", created_by="test", device_id="pi-1")
    one = await ring.create(Role.DEVICE, "t1", created_by="test", device_id="pi-1")
    two = await ring.create(Role.DEVICE, "t2", created_by="test", device_id="pi-2")
    assert one is not None
    assert two is not None
    principal = ring.lookup(one[1].encode())
    assert principal is not None
    assert (principal.role, principal.device_id) == (Role.DEVICE, "pi-1")
    assert await ring.revoke_device("pi-1") == [one[0].id]
    assert ring.lookup(one[1].encode()) is None
    assert ring.lookup(two[1].encode()) is not None


async def test_key_rates_default_for_read_and_ingest_only(
    store: SQLiteStore, clock: ManualClock
) -> None:
    ring = KeyRing(store, clock, default_key_rate=600)
    secrets = {}
    for role in (Role.ADMIN, Role.READ, Role.INGEST):
        created = await ring.create(role, role.value, created_by="test")
        assert created is not None
        secrets[role] = created[1]
    own = await ring.create(Role.ADMIN, "limited admin", created_by="test", max_per_minute=5)
    assert own is not None

    def rate(secret: str) -> Rate | None:
        principal = ring.lookup(secret.encode())
        assert principal is not None
        return principal.rate

    assert rate(secrets[Role.ADMIN]) is None
    assert rate(secrets[Role.READ]) == Rate(per_minute=600)
    assert rate(secrets[Role.INGEST]) == Rate(per_minute=600)
    assert rate(own[1]) == Rate(per_minute=5)


@pytest.mark.parametrize("name", ["", "x" * 129, "tab\there"])
async def test_bad_names_are_refused(store: SQLiteStore, clock: ManualClock, name: str) -> None:
    with pytest.raises(InvalidInput):
        await KeyRing(store, clock).create(Role.READ, name, created_by="test")
