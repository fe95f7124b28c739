"""Listing by status sees the status the hub judges, not only the one the store holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lastseen.clock import ManualClock
from lastseen.hub.core import Hub
from lastseen.presence import Status
from lastseen.store import Batch, DeviceQuery, SQLiteStore
from tests.hub.conftest import HubFactory, settings

pytestmark = pytest.mark.anyio


class GatedStore(SQLiteStore):
    """The real SQLite store, whose commits wait while ``gate`` is clear."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.gate.set()

    async def apply(self, batch: Batch) -> None:
        await self.gate.wait()
        await super().apply(batch)


async def _ids(hub: Hub, status: Status, limit: int = 100, **filters: object) -> list[str]:
    """Every page of a status listing, walked with its cursor."""
    seen: list[str] = []
    after = None
    while True:
        page, cursor, _ = await hub.list_devices(
            DeviceQuery(status=status, after=after, limit=limit, **filters)  # type: ignore[arg-type]
        )
        assert len(page) <= limit
        seen += [record.id for record, _ in page]
        if cursor is None:
            return seen
        after = cursor


async def test_due_devices_not_yet_swept_are_listed_under_their_judged_status(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    names = [f"pi-{i}" for i in range(7)]
    for name in names:
        await hub.heartbeat(name)
    await hub.heartbeat("late")
    clock.advance(10.5)  # every deadline but "late"'s has passed; no sweep ran
    await hub.heartbeat("late")
    for limit in (1, 3, 100):
        assert await _ids(hub, Status.STALE, limit) == sorted(names)
        assert await _ids(hub, Status.ONLINE, limit) == ["late"]
    assert await hub.sweep() == 7
    assert await _ids(hub, Status.STALE, 3) == sorted(names)  # now from the store


async def test_judged_devices_still_meet_the_other_filters(
    make_hub: HubFactory, clock: ManualClock
) -> None:
    hub = await make_hub()
    await hub.put_device("a", labels={"site": "north"})
    await hub.put_device("b", labels={"site": "south"})
    await hub.put_device("c", profile="fast", labels={"site": "north"})
    for name in "abc":
        await hub.heartbeat(name)
    clock.advance(10.5)  # "c" (fast) is offline by now, "a" and "b" stale
    assert await _ids(hub, Status.STALE, label=("site", "north")) == ["a"]
    assert await _ids(hub, Status.STALE, profile="default") == ["a", "b"]
    assert await _ids(hub, Status.OFFLINE, profile="fast") == ["c"]
    assert await _ids(hub, Status.OFFLINE, profile="default") == []


async def test_a_swept_change_not_yet_committed_is_listed_under_its_new_status(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = GatedStore(tmp_path / "hub.db")
    hub = Hub(settings(), store, clock)
    await hub.start(timers=False)
    try:
        await hub.heartbeat("pi-1")
        store.gate.clear()
        clock.advance(10.5)
        assert await hub.sweep() == 1  # handed to the committer, which now waits
        assert (await store.get_device("pi-1")).state.status is Status.ONLINE  # type: ignore[union-attr]
        assert await _ids(hub, Status.STALE) == ["pi-1"]
        assert await _ids(hub, Status.ONLINE) == []
    finally:
        store.gate.set()
        await hub.stop()
    assert (await _stored_status(tmp_path)) is Status.STALE


async def _stored_status(tmp_path: Path) -> Status:
    store = SQLiteStore(tmp_path / "hub.db")
    await store.open()
    try:
        record = await store.get_device("pi-1")
        assert record is not None
        return record.state.status
    finally:
        await store.close()
