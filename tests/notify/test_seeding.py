"""Seeding the alert engine at start: from the hub's statuses as its transitions left
them, then the feed. A device whose deadlines passed while nothing swept is counted
once, from the transitions the sweep stamps at those deadlines; one already offline
starts its episode back-dated to its stored ``since``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from lastseen.clock import ManualClock
from lastseen.hub.core import Hub
from lastseen.notify.models import AlertKind, AlertRule, AlertState
from lastseen.notify.service import Notifier
from lastseen.notify.sqlite import SQLiteNotifyStore
from lastseen.presence import Profile, ProfileRegistry
from lastseen.settings import Settings
from lastseen.store import SQLiteStore

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0
GONE = AlertRule(name="gone", kind=AlertKind.OFFLINE_FOR, duration=100.0, source="config")


async def test_a_device_overdue_at_start_alerts_once_from_its_swept_transitions(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    settings = Settings(
        profiles=ProfileRegistry([Profile(stale_after=10.0, offline_after=30.0)]),
        flush_interval=3600.0,
    )
    hub = Hub(settings, SQLiteStore(tmp_path / "hub.db"), clock)
    await hub.start(timers=False)
    notifier = Notifier(hub, SQLiteNotifyStore(tmp_path / "notify.db"), config_rules=[GONE])
    try:
        await hub.heartbeat("pi-1")
        await hub.heartbeat("pi-2")
        clock.advance(30.0)
        assert await hub.sweep(clock.now()) == 4  # both stale at T0+10, offline at T0+30
        clock.advance(10.0)
        await hub.heartbeat("pi-1")  # back online at T0+40
        clock.advance(260.0)  # pi-1's deadlines (T0+50, T0+70) pass; nothing sweeps
        await notifier.start()
        # Seeded as the transitions left them: pi-2 offline, pi-1 still online.
        assert notifier.engine.devices() == {"pi-2"}
        assert await hub.sweep(clock.now()) == 2  # pi-1: online → stale → offline
        target = await hub.current_seq()
        deadline = time.monotonic() + 10.0
        while await notifier.store.cursor() < target or len(await _open(notifier)) < 2:
            assert time.monotonic() < deadline, "the notifier did not catch up"
            await asyncio.sleep(0.01)
        alerts = await notifier.store.alerts(None, 10)
        assert sorted((a.device_id, a.state, a.opened_at) for a in alerts) == [
            ("pi-1", AlertState.OPEN, T0 + 70.0 + 100.0),
            ("pi-2", AlertState.OPEN, T0 + 30.0 + 100.0),
        ]
    finally:
        await notifier.stop()
        await hub.stop()


async def _open(notifier: Notifier) -> list[object]:
    return list(await notifier.store.open_alerts())
