"""Scale-out end to end: real ``lastseen serve --redis`` processes on the real Redis.

Seed 000's bug was presence in one process's memory behind a load balancer; these
tests put three instances side by side and check that they answer as one. The
exactly-once tests run the multi-host configuration (``--postgres``, one fresh
database each); the others share a SQLite file, the one-host configuration.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from lastseen.testing import HubProcess
from tests.scaleout.cluster import RedisServer
from tests.scaleout.processes import (
    FAST,
    SSE,
    instances,
    running,
    store_events,
    stream_pairs,
    until,
)
from tests.tcpproxy import ThreadedProxy, via

pytestmark = pytest.mark.e2e


@pytest.fixture
def three(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[list[HubProcess]]:
    with running(tmp_path, redis_url, redis_prefix, 3, *FAST) as hubs:
        yield hubs


@pytest.fixture
def three_on_postgres(
    tmp_path: Path, redis_url: str, redis_prefix: str, postgres_dsn: str
) -> Iterator[list[HubProcess]]:
    """Three instances sharing Redis and one PostgreSQL database (several hosts' setup)."""
    with running(tmp_path, redis_url, redis_prefix, 3, "--postgres", postgres_dsn, *FAST) as hubs:
        yield hubs


def test_a_heartbeat_on_one_instance_is_seen_at_once_on_every_other(
    three: list[HubProcess],
) -> None:
    clients = [hub.client() for hub in three]
    subscriber = SSE(three[2].url)
    try:
        devices = [f"pi-{i}" for i in range(12)]
        for i, device in enumerate(devices):
            writer = clients[i % 3]
            ack = writer.post(f"/v1/devices/{device}/heartbeat", json={})
            assert ack.status_code == 200
            assert ack.json()["status"] == "online"
            for reader in clients:  # right after the ack, every instance agrees
                seen = reader.get(f"/v1/devices/{device}")
                assert seen.status_code == 200
                assert seen.json()["status"] == "online"
        listed = clients[1].get("/v1/devices", params={"status": "online"}).json()
        assert {d["id"] for d in listed["devices"]} == set(devices)

        def everything_offline() -> bool:
            return sum(e["to"] == "offline" for e in subscriber.events) == len(devices)

        until(everything_offline, what="offline transitions on instance C")
        got = {(e["device_id"], e["to"]) for e in subscriber.events}
        for device in devices:  # caused on A and B too, and timeouts fired anywhere
            assert {(device, "online"), (device, "stale"), (device, "offline")} <= got
        seqs = [e["seq"] for e in subscriber.events]
        assert seqs == sorted(seqs)
        assert len(seqs) == len(set(seqs)) == 3 * len(devices)
        # Resuming on another instance gets exactly what was missed.
        with clients[0].stream("GET", "/v1/stream", params={"after": seqs[-4]}) as answer:
            resumed = []
            for line in answer.iter_lines():
                if line.startswith("id: "):
                    resumed.append(int(line[4:]))
                if len(resumed) == 3:
                    break
        assert resumed == seqs[-3:]
    finally:
        subscriber.close()
        for client in clients:
            client.close()


def _beat_fleet(hubs: list[HubProcess], count: int) -> None:
    for start in range(0, count, 1000):
        batch = [{"device_id": f"d{i:05d}"} for i in range(start, min(start + 1000, count))]
        with hubs[(start // 1000) % len(hubs)].client() as client:
            answer = client.post("/v1/heartbeats", json={"heartbeats": batch})
            assert answer.status_code == 200, answer.text


def _exactly_once(dsn: str, url: str, prefix: str, count: int) -> None:
    expected = 3 * count

    def streamed() -> bool:
        return len(stream_pairs(url, prefix)) >= expected

    until(streamed, timeout=60, what=f"{expected} transitions in the stream")
    stream = stream_pairs(url, prefix)
    assert [s for s, _, _ in stream] == list(range(1, expected + 1))
    assert len({(d, t) for _, d, t in stream}) == expected  # no device moved twice

    def stored() -> bool:
        return len(store_events(dsn)) >= expected

    until(stored, timeout=60, what=f"{expected} transitions in PostgreSQL")
    rows = store_events(dsn)
    assert [s for s, _, _ in rows] == list(range(1, expected + 1))  # contiguous, no extra
    assert len({(d, t) for _, d, t in rows}) == expected  # no transition stored twice
    assert rows == stream


def test_ten_thousand_expiries_with_three_sweepers_fire_exactly_once(
    three_on_postgres: list[HubProcess], postgres_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    _beat_fleet(three_on_postgres, 10_000)
    _exactly_once(postgres_dsn, redis_url, redis_prefix, 10_000)


def test_an_instance_killed_mid_sweep_loses_and_duplicates_nothing(
    three_on_postgres: list[HubProcess], postgres_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    three = three_on_postgres
    _beat_fleet(three, 5000)

    def sweeping() -> bool:  # the stale deadlines are firing now
        return len(stream_pairs(redis_url, redis_prefix)) > 5000

    until(sweeping, what="the first timeouts")
    three[1].stop(signal.SIGKILL)
    _exactly_once(postgres_dsn, redis_url, redis_prefix, 5000)


def test_redis_restart_answers_503_then_recovers_by_itself(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    [hub] = instances(tmp_path, server.url, "faults", 1)
    try:
        with hub.client() as client:
            assert client.post("/v1/devices/pi-1/heartbeat").status_code == 200
            answers: list[tuple[int | str, float]] = []
            stop = threading.Event()

            def load() -> None:  # heartbeats keep coming through the outage
                with hub.client() as loader:
                    while not stop.is_set():
                        started = time.monotonic()
                        try:
                            code: int | str = loader.post("/v1/devices/load/heartbeat").status_code
                        except httpx.HTTPError as exc:
                            code = type(exc).__name__
                        answers.append((code, time.monotonic() - started))

            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            server.stop()
            started = time.monotonic()
            refused = client.post("/v1/devices/pi-1/heartbeat")
            assert time.monotonic() - started < 1.0
            assert refused.status_code == 503
            assert refused.json()["code"] == "unavailable"
            assert client.get("/readyz").status_code == 503
            # The load saw the outage too before Redis comes back.
            until(lambda: any(code == 503 for code, _ in answers), what="a 503 under load")
            server.start()

            def recovered() -> bool:
                return client.post("/v1/devices/pi-1/heartbeat").status_code == 200

            until(recovered, timeout=10, what="recovery after the restart")
            stop.set()
            loader.join(5)
            assert client.get("/readyz").status_code == 200
            assert client.get("/v1/devices/pi-1").json()["status"] == "online"
            codes = [code for code, _ in answers]
            assert set(codes) <= {200, 503}, answers  # never a 500, never a broken answer
            assert max(took for _, took in answers) < 2.0, answers  # never a hang
            assert 503 in codes
            assert codes[-1] == 200
    finally:
        hub.stop()
        server.stop()


def _workers(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_workers_share_one_port_and_one_state(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    [hub] = instances(tmp_path, redis_url, redis_prefix, 1, "--workers", "3")
    try:
        assert hub.proc is not None
        assert len(_workers(hub.proc.pid)) == 3
        for i in range(30):
            # A new connection each time: the kernel spreads them over the workers.
            answer = httpx.post(f"{hub.url}/v1/devices/w-{i}/heartbeat", timeout=5)
            assert answer.status_code == 200
            read = httpx.get(f"{hub.url}/v1/devices/w-{i}", timeout=5)
            assert read.json()["status"] == "online"
        listed = httpx.get(f"{hub.url}/v1/devices", params={"limit": 100}, timeout=5).json()
        assert len(listed["devices"]) == 30
    finally:
        assert hub.stop() == 0


def test_a_worker_killed_with_sigkill_is_replaced(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    [hub] = instances(tmp_path, redis_url, redis_prefix, 1, "--workers", "2")
    try:
        assert hub.proc is not None
        parent = hub.proc.pid
        first = _workers(parent)
        assert len(first) == 2
        victim = min(first)
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            now = _workers(parent)
            return len(now) == 2 and victim not in now

        until(replaced, what="a new worker in place of the killed one")
        survivor = (first - {victim}).pop()
        assert survivor in _workers(parent)
        for i in range(20):  # new connections reach both workers, old and new
            answer = httpx.post(f"{hub.url}/v1/devices/k-{i}/heartbeat", timeout=5)
            assert answer.status_code == 200
        assert "event=worker_replaced" in hub.log()
    finally:
        assert hub.stop() == 0  # a clean stop after the replacement


def test_a_device_rate_limit_holds_across_instances(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {"LASTSEEN_MAX_PER_MINUTE": "2"}
    hubs = instances(tmp_path, redis_url, redis_prefix, 2, env=env)
    try:
        codes = []
        for i in range(3):  # alternate instances: the limit is one, in Redis
            with hubs[i % 2].client() as client:
                codes.append(client.post("/v1/devices/chatty/heartbeat").status_code)
        assert codes == [200, 200, 429]
    finally:
        for hub in hubs:
            hub.stop()


def test_a_postgres_outage_buffers_transitions_in_redis_and_drains_them_once(
    tmp_path: Path, redis_url: str, redis_prefix: str, postgres_dsn: str
) -> None:
    parts = urlsplit(postgres_dsn)
    proxy = ThreadedProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    hubs: list[HubProcess] = []
    clients: list[httpx.Client] = []
    subscriber: SSE | None = None
    stop = threading.Event()
    answers: list[int | str] = []
    try:
        hubs = instances(
            tmp_path, redis_url, redis_prefix, 2, "--postgres", via(postgres_dsn, proxy.port), *FAST
        )
        clients = [hub.client() for hub in hubs]
        subscriber = SSE(hubs[0].url)
        sse = subscriber

        def load() -> None:  # a small steady load on both instances through the outage
            with hubs[0].client() as a, hubs[1].client() as b:
                i = 0
                while not stop.is_set():
                    try:
                        code: int | str = (
                            (a, b)[i % 2].post(f"/v1/devices/steady-{i % 4}/heartbeat").status_code
                        )
                    except httpx.HTTPError as exc:
                        code = type(exc).__name__
                    answers.append(code)
                    i += 1
                    stop.wait(0.05)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        fading = [f"fade-{i}" for i in range(20)]
        for device in fading:  # these go stale and offline while PostgreSQL is away
            assert clients[0].post(f"/v1/devices/{device}/heartbeat").status_code == 200
        proxy.cut()
        down_at = len(answers)
        arriving = [f"new-{i}" for i in range(10)]
        for i, device in enumerate(arriving):  # registered while PostgreSQL is away
            assert clients[i % 2].post(f"/v1/devices/{device}/heartbeat").status_code == 200
            assert clients[(i + 1) % 2].get(f"/v1/devices/{device}").json()["status"] == "online"

        def faded() -> bool:
            offline = {e["device_id"] for e in sse.events if e["to"] == "offline"}
            return offline >= set(fading)

        until(faded, what="offline transitions on SSE during the outage")
        for device in fading:
            assert clients[1].get(f"/v1/devices/{device}").json()["status"] == "offline"
        assert len(answers) > down_at + 10  # the load kept running meanwhile
        streamed = stream_pairs(redis_url, redis_prefix)
        assert len(streamed) >= 4 + 3 * len(fading) + len(arriving)
        assert len(store_events(postgres_dsn)) < len(streamed)  # buffered in Redis
        proxy.restore()
        stop.set()
        loader.join(5)
        assert set(answers) == {200}, answers  # heartbeats never failed

        def drained() -> bool:
            return len(store_events(postgres_dsn)) >= len(stream_pairs(redis_url, redis_prefix))

        until(drained, timeout=30, what="the outbox drained into PostgreSQL")
        stream = stream_pairs(redis_url, redis_prefix)
        rows = store_events(postgres_dsn)
        assert [s for s, _, _ in rows] == list(range(1, len(stream) + 1))
        assert rows == stream  # every transition exactly once
        assert {(e["seq"], e["device_id"], e["to"]) for e in sse.events} <= set(stream)
        with psycopg.connect(postgres_dsn) as db:
            stored = {r[0] for r in db.execute("SELECT id FROM devices").fetchall()}
        assert set(fading) | set(arriving) <= stored  # registered devices reached it too
    finally:
        stop.set()
        if subscriber is not None:
            subscriber.close()
        for client in clients:
            client.close()
        for hub in hubs:
            hub.stop()
        proxy.close()
