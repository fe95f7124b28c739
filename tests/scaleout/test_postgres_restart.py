"""A real PostgreSQL restart under load: two ``lastseen serve --redis --postgres``
processes on a private PostgreSQL cluster (tests/pgserver.py), restarted with
``pg_ctl restart -m fast`` and then stopped for a while and started again, while a
steady load of heartbeats runs. Presence must not notice; the outbox buffers in Redis
and drains afterwards, every transition in PostgreSQL exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from lastseen.testing import HubProcess
from tests.pgserver import PostgresServer
from tests.scaleout.processes import (
    FAST,
    SSE,
    SteadyLoad,
    running,
    store_events,
    stream_pairs,
    until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def two_on_private_postgres(
    tmp_path: Path, redis_url: str, redis_prefix: str, private_postgres: PostgresServer
) -> Iterator[tuple[list[HubProcess], str]]:
    dsn = private_postgres.create_database("lastseen")
    with running(tmp_path, redis_url, redis_prefix, 2, "--postgres", dsn, *FAST) as hubs:
        yield hubs, dsn


def _beat(clients: list[httpx.Client], devices: list[str]) -> None:
    for i, device in enumerate(devices):
        answer = clients[i % 2].post(f"/v1/devices/{device}/heartbeat")
        assert answer.status_code == 200, answer.text
        assert clients[(i + 1) % 2].get(f"/v1/devices/{device}").json()["status"] == "online"


def test_a_postgres_restart_under_load_keeps_presence_and_stores_every_transition_once(
    two_on_private_postgres: tuple[list[HubProcess], str],
    private_postgres: PostgresServer,
    redis_url: str,
    redis_prefix: str,
) -> None:
    hubs, dsn = two_on_private_postgres
    clients = [hub.client() for hub in hubs]
    subscriber = SSE(hubs[0].url)
    load = SteadyLoad(hubs)
    try:
        _beat(clients, [f"before-{i}" for i in range(10)])
        until(lambda: len(store_events(dsn)) >= 10, what="the first transitions stored")

        # 1. A fast restart: every connection of the pool dies at once.
        before = len(load.answers)
        private_postgres.restart("fast")
        _beat(clients, [f"across-{i}" for i in range(10)])

        # 2. A longer outage: stop, keep working until timeouts fire, start again.
        private_postgres.stop("fast")
        down_at = len(load.answers)
        fading = [f"fade-{i}" for i in range(10)]
        _beat(clients, fading)

        def faded() -> bool:
            offline = {e["device_id"] for e in subscriber.events if e["to"] == "offline"}
            return offline >= set(fading)

        until(faded, what="timeouts fired and pushed while PostgreSQL is down")
        for device in fading:
            assert clients[1].get(f"/v1/devices/{device}").json()["status"] == "offline"
        assert len(load.answers) > down_at + 10  # the load kept being answered meanwhile
        private_postgres.start()
        streamed = stream_pairs(redis_url, redis_prefix)
        stored_early = store_events(dsn)
        assert len(stored_early) < len(streamed)  # buffered in Redis during the outage

        def drained() -> bool:
            return len(store_events(dsn)) >= len(stream_pairs(redis_url, redis_prefix))

        until(drained, timeout=30, what="the outbox drained into PostgreSQL")
        load.stop()
        assert len(load.answers) > before + 20
        assert set(load.answers) == {200}, load.answers  # heartbeats never failed
        stream = stream_pairs(redis_url, redis_prefix)
        rows = store_events(dsn)
        assert [s for s, _, _ in rows] == list(range(1, len(stream) + 1))  # contiguous
        assert rows == stream  # every transition exactly once, none invented
        assert len({(d, t) for _, d, t in rows if d.startswith("fade-")}) == 3 * len(fading)
        with psycopg.connect(dsn) as db:
            stored = {r[0] for r in db.execute("SELECT id FROM devices").fetchall()}
        assert {f"across-{i}" for i in range(10)} | set(fading) <= stored
    finally:
        load.stop()
        subscriber.close()
        for client in clients:
            client.close()
