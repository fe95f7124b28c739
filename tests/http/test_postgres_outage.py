"""The embedded hub on PostgreSQL while the database is away: what keeps working, what
answers 503 ``store_unavailable``, and that it recovers by itself (docs/postgres.md).

In-process app and hub, the real PostgreSQL behind a proxy whose link the test cuts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from lastseen.clock import ManualClock
from lastseen.http.app import create_app
from lastseen.hub.core import Hub
from lastseen.settings import Settings
from lastseen.store.postgres import PostgresStore
from tests.store.test_postgres import OUTAGE_BOUND
from tests.tcpproxy import Proxy, via

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0


@pytest.fixture
async def setup(postgres_dsn: str) -> AsyncIterator[tuple[Hub, Proxy, httpx.AsyncClient]]:
    parts = urlsplit(postgres_dsn)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    settings = Settings(open=True, flush_interval=3600.0, key_refresh=3600.0)
    hub = Hub(settings, PostgresStore(via(postgres_dsn, proxy.port)), ManualClock(T0))
    app = create_app(hub)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                yield hub, proxy, client
                # Let the lifespan's final flush reach the database.
                await proxy.restore()
    finally:
        await proxy.cut()


async def test_an_outage_keeps_presence_answers_503_on_history_and_heals(
    setup: tuple[Hub, Proxy, httpx.AsyncClient],
) -> None:
    hub, proxy, client = setup
    assert (await client.post("/v1/devices/pi-1/heartbeat")).json()["status"] == "online"
    await proxy.cut()

    # A heartbeat of an online device writes nothing synchronously: still answered.
    started = time.monotonic()
    beat = await client.post("/v1/devices/pi-1/heartbeat")
    assert (beat.status_code, beat.json()["status"]) == (200, "online")
    assert (await client.get("/v1/devices/pi-1")).json()["status"] == "online"
    # What only the store knows is a quick, typed 503.
    for path in ("/v1/devices", "/v1/events?after=0"):
        answer = await client.get(path)
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "store_unavailable"
    assert time.monotonic() - started < 3 * OUTAGE_BOUND

    # A new device needs a commit: it waits (retried), and is never answered early.
    pending = asyncio.create_task(client.post("/v1/devices/pi-2/heartbeat"))
    async with asyncio.timeout(10):
        while True:  # polls a counter the committer bumps; no event exists for it
            if hub.metrics.commit_failures.get() >= 1:
                break
            await asyncio.sleep(0.02)
    assert not pending.done()
    await proxy.restore()
    async with asyncio.timeout(10):
        answer = await pending
    assert (answer.status_code, answer.json()["status"]) == (200, "online")
    events = (await client.get("/v1/events?after=0")).json()["events"]
    assert [(e["device_id"], e["to"]) for e in events] == [("pi-1", "online"), ("pi-2", "online")]
