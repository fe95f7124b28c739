"""A start from the store: the hot state loaded batch by batch, and the backlog held
until the hub serves."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lastseen.clock import ManualClock
from lastseen.hub.core import Hub
from lastseen.presence import Profile, ProfileRegistry, Status
from lastseen.store import Batch, DeviceRecord, SQLiteStore
from lastseen.store import rows as store_rows
from tests.hub.conftest import T0, CountingStore, settings
from tests.hub.strategies import states

times = st.floats(min_value=T0 - 1e6, max_value=T0 + 1e6, allow_nan=False)
maps = st.dictionaries(st.sampled_from(["a", "b", "ü"]), st.integers(-2, 2) | st.text(max_size=3))
records = st.builds(
    DeviceRecord,
    id=st.just(""),
    # "gone" is not configured: such a device is loaded with the default profile.
    profile=st.sampled_from(["default", "fast", "gone"]),
    state=states(times),
    labels=st.dictionaries(st.sampled_from(["site", "room"]), st.text(max_size=3)),
    attributes=maps,
    metrics=maps,
    created_at=times,
    updated_at=times,
)


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(records, max_size=9), st.integers(1, 4))
def test_a_start_loads_in_batches_exactly_what_the_store_holds(
    tmp_path: Path, stored: list[DeviceRecord], batch: int
) -> None:
    """Every device as ``load_devices`` decodes it (the records' own decoder), however
    the rows are cut into batches."""
    path = tmp_path / f"start-{batch}-{len(stored)}-{id(stored)}.db"
    stored = [
        DeviceRecord(f"d{i}", r.profile, r.state, r.labels, r.attributes, r.metrics,
                     r.created_at, r.updated_at)
        for i, r in enumerate(stored)
    ]  # fmt: skip

    async def check() -> None:
        store = SQLiteStore(path)
        await store.open()
        await store.apply(Batch(upserts=stored))
        expected = await store.load_devices()
        await store.close()
        hub = Hub(settings(), SQLiteStore(path), ManualClock(T0))
        with mock.patch.object(store_rows, "DEVICE_ROWS_BATCH", batch):
            await hub.start(timers=False)
        try:
            assert len(hub.table) == len(expected)
            for record in expected:
                got = hub.record(record.id)
                profile = "default" if record.profile == "gone" else record.profile
                assert got.profile == profile
                assert got.state == record.state
                assert (got.labels, got.attributes, got.metrics) == (
                    record.labels,
                    record.attributes,
                    record.metrics,
                )
                assert (got.created_at, got.updated_at) == (record.created_at, record.updated_at)
            counts = dict.fromkeys(Status, 0)
            for record in expected:
                counts[record.state.status] += 1
            assert hub.status_counts == counts
        finally:
            await hub.stop()

    asyncio.run(check())


@pytest.mark.anyio
async def test_a_restart_sweeps_nothing_until_the_hub_serves(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    first = Hub(settings(), CountingStore(tmp_path / "hub.db"), clock)
    await first.start(timers=False)
    await first.heartbeat("a")
    await first.heartbeat("b")
    await first.stop()
    clock.advance(100.0)  # down past both devices' deadlines
    serving = asyncio.Event()
    hub = Hub(settings(), CountingStore(tmp_path / "hub.db"), clock, serving=serving)
    await hub.start()  # with its timers
    try:
        for _ in range(20):  # many turns of the loop: the timer would have swept
            await asyncio.sleep(0)
        assert hub.seq == 2
        # Reads already show what the engine says now.
        assert hub.get("a")[0].state.status is Status.OFFLINE
        serving.set()
        published = []
        async with asyncio.timeout(10):
            async for batch in hub.transitions(2):
                published += [(item.device_id, item.to_status) for item in batch]
                if len(published) == 4:
                    break
        assert sorted(published) == sorted(
            [("a", Status.STALE), ("a", Status.OFFLINE), ("b", Status.STALE), ("b", Status.OFFLINE)]
        )
    finally:
        await hub.stop()


@pytest.mark.anyio
async def test_a_stored_profile_no_longer_configured_falls_back_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    first = Hub(settings(), CountingStore(tmp_path / "hub.db"), clock)
    await first.start(timers=False)
    for device_id in ("x", "y", "z"):
        await first.put_device(device_id, profile="fast")
    await first.stop()
    only_default = ProfileRegistry([Profile(stale_after=10.0, offline_after=30.0)])
    hub = Hub(settings(profiles=only_default), CountingStore(tmp_path / "hub.db"), clock)
    with caplog.at_level(logging.WARNING, logger="lastseen.presence"):
        await hub.start(timers=False)
    try:
        assert {hub.record(d).profile for d in ("x", "y", "z")} == {"default"}
        warnings = [r for r in caplog.records if "event=unknown_profile" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await hub.stop()
