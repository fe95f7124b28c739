"""The ``Store`` contract for keys and the audit log, on every backend in ``conftest``.

Speaks only the protocol, like ``test_contract.py``; kept apart so the presence part
and the security part of the contract can change independently.
"""

from __future__ import annotations

import asyncio

import pytest

from lastseen.errors import Conflict
from lastseen.store import AuditRecord, KeyRecord, Store
from tests.store.conftest import Backend

pytestmark = pytest.mark.anyio


def key(
    key_id: str, *, role: str = "read", at: float = 100.0, device: str | None = None
) -> KeyRecord:
    return KeyRecord(
        id=key_id,
        role=role,
        name=f"key {key_id}",
        digest=key_id.encode().ljust(32, b"\0"),
        device_id=device,
        max_per_minute=7,
        created_at=at,
        created_by="test",
    )


def record(at: float, action: str = "device.created", target: str = "d1") -> AuditRecord:
    return AuditRecord(
        id=0,
        at=at,
        actor="k1",
        action=action,
        target=target,
        source="203.0.113.7",
        details={"labels": {"site": "north"}, "n": 1},
    )


# --- keys --------------------------------------------------------------------------


async def test_a_fresh_store_has_no_keys(store: Store) -> None:
    assert await store.load_keys() == []


async def test_keys_round_trip_in_creation_order(store: Store) -> None:
    second, first = key("b", at=200.0), key("a", at=100.0, role="device", device="pi-1")
    assert await store.put_key(second)
    assert await store.put_key(first)
    assert await store.load_keys() == [first, second]


async def test_a_taken_id_is_a_conflict_and_changes_nothing(store: Store) -> None:
    await store.put_key(key("a"))
    version = await store.keys_version()
    with pytest.raises(Conflict):
        await store.put_key(KeyRecord("a", "admin", "other", b"x" * 32))
    assert await store.load_keys() == [key("a")]
    assert await store.keys_version() == version


async def test_only_if_none_writes_the_first_key_only(store: Store) -> None:
    assert await store.put_key(key("a"), only_if_none=True)
    assert not await store.put_key(key("b"), only_if_none=True)
    assert [k.id for k in await store.load_keys()] == ["a"]


async def test_only_if_none_counts_revoked_keys_too(store: Store) -> None:
    await store.put_key(key("a"))
    await store.revoke_key("a", 5.0)
    assert not await store.put_key(key("b"), only_if_none=True)


async def test_concurrent_bootstraps_create_exactly_one_key(backend: Backend) -> None:
    stores = [backend.make() for _ in range(3)]
    for opened in stores:
        await opened.open()
    try:
        results = await asyncio.gather(
            *(s.put_key(key(f"k{i}"), only_if_none=True) for i, s in enumerate(stores))
        )
        assert sorted(results) == [False, False, True]
        assert len(await stores[0].load_keys()) == 1
    finally:
        for opened in stores:
            await opened.close()


async def test_revoke_marks_once_and_keeps_the_first_time(store: Store) -> None:
    await store.put_key(key("a"))
    revoked = await store.revoke_key("a", 300.0)
    assert revoked is not None
    assert (revoked.revoked_at, revoked.active) == (300.0, False)
    again = await store.revoke_key("a", 400.0)
    assert again is not None
    assert again.revoked_at == 300.0
    assert await store.revoke_key("nope", 1.0) is None
    assert (await store.load_keys())[0].revoked_at == 300.0


async def test_keys_version_moves_on_every_change_only(store: Store) -> None:
    start = await store.keys_version()
    await store.put_key(key("a"))
    added = await store.keys_version()
    assert added != start
    await store.revoke_key("a", 1.0)
    revoked = await store.keys_version()
    assert revoked != added
    await store.revoke_key("a", 2.0)  # already revoked: no change
    await store.revoke_key("zzz", 2.0)  # unknown: no change
    assert await store.keys_version() == revoked


async def test_keys_survive_reopening(backend: Backend) -> None:
    first = backend.make()
    await first.open()
    try:
        await first.put_key(key("a", role="admin"))
        await first.revoke_key("a", 9.0)
        await first.put_key(key("b"))
    finally:
        await first.close()
    second = backend.make()
    await second.open()
    try:
        keys = await second.load_keys()
        assert [(k.id, k.revoked_at) for k in keys] == [("a", 9.0), ("b", None)]
        assert keys[1].digest == key("b").digest
    finally:
        await second.close()


# --- audit -------------------------------------------------------------------------


async def test_audit_appends_with_increasing_ids_and_round_trips(store: Store) -> None:
    ids = [await store.append_audit(record(float(t))) for t in range(1, 4)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    page = await store.audit(limit=10)
    assert [r.id for r in page] == ids
    assert page[0] == AuditRecord(
        ids[0],
        1.0,
        "k1",
        "device.created",
        "d1",
        "203.0.113.7",
        {"labels": {"site": "north"}, "n": 1},
    )


async def test_audit_pages_forwards_and_backwards(store: Store) -> None:
    ids = [await store.append_audit(record(float(t), target=f"d{t}")) for t in range(10)]
    assert [r.id for r in await store.audit(after=ids[2], limit=3)] == ids[3:6]
    newest = await store.audit(before=ids[5], limit=3, newest_first=True)
    assert [r.id for r in newest] == [ids[4], ids[3], ids[2]]
    assert [r.id for r in await store.audit(limit=2, newest_first=True)] == [ids[9], ids[8]]
    window = await store.audit(after=ids[1], before=ids[4], limit=10)
    assert [r.id for r in window] == ids[2:4]
    assert [r.id for r in await store.audit(after=ids[-1], limit=3)] == []
    assert await store.audit(limit=0) == []


async def test_audit_prune_by_time_never_reuses_ids(store: Store) -> None:
    old = [await store.append_audit(record(float(t))) for t in range(5)]
    assert await store.prune_audit(before=5.0) == 5
    assert await store.audit(limit=10) == []
    new = await store.append_audit(record(10.0))
    assert new > max(old)


async def test_audit_survives_reopening(backend: Backend) -> None:
    first = backend.make()
    await first.open()
    try:
        written = await first.append_audit(record(1.0, action="key.revoked", target="k9"))
    finally:
        await first.close()
    second = backend.make()
    await second.open()
    try:
        (kept,) = await second.audit(limit=5)
        assert (kept.id, kept.action, kept.target) == (written, "key.revoked", "k9")
    finally:
        await second.close()
