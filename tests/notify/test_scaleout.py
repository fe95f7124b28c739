"""Notifications in scale-out mode: two real ``lastseen serve --redis --postgres`` processes.

Both instances read the same fleet-wide transition feed, enqueue into the same
PostgreSQL queue and claim from it; the receiver is a real HTTP server on loopback
(allowed by ``--webhook-allow-private``). Each delivery must arrive once (again only
after a crash, with the same event id), and an alert must fire once per episode.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from lastseen.notify.payloads import sign
from lastseen.testing import HubProcess
from tests.notify.threaded import HOLD, Hook, Request, last_status, until

pytestmark = pytest.mark.e2e

ADMIN = "scaleout-notify-admin-key"


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, redis_prefix: str
) -> Iterator[Callable[[], HubProcess]]:
    """Starts instances sharing Redis and one PostgreSQL database (several hosts'
    setup); parametrised ``one_host``: sharing one data directory (SQLite) instead."""
    one_host = getattr(request, "param", "postgres") == "one_host"
    durable = () if one_host else ("--postgres", request.getfixturevalue("postgres_dsn"))
    started: list[HubProcess] = []
    env = {
        "LASTSEEN_ADMIN_KEY": ADMIN,
        "LASTSEEN_WEBHOOK_BACKOFF": "0.05",
        "LASTSEEN_WEBHOOK_BACKOFF_MAX": "0.1",
        "LASTSEEN_WEBHOOK_TIMEOUT": "1",
    }

    def start() -> HubProcess:
        hub = HubProcess(
            tmp_path / ("data" if one_host else f"data-{len(started)}"),
            "--redis", redis_url, "--redis-prefix", redis_prefix, *durable,
            "--stale-after", "0.5", "--offline-after", "1", "--webhook-allow-private",
            env=env,
        )  # fmt: skip
        hub.log_path = tmp_path / f"instance-{len(started)}.log"
        hub.start()
        started.append(hub)
        return hub

    try:
        yield start
    finally:
        for hub in started:
            hub.stop()


class AlertStream:
    """An SSE subscriber in a thread, collecting the ``alert`` messages of one instance."""

    def __init__(self, hub: HubProcess) -> None:
        self.alerts: list[dict[str, object]] = []
        self.connected = threading.Event()
        self._client = hub.client()
        self._client.timeout = httpx.Timeout(5.0, read=None)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.connected.wait(5.0)

    def _run(self) -> None:
        try:
            with self._client.stream("GET", "/v1/stream") as answer:
                self.connected.set()
                for line in answer.iter_lines():
                    if line.startswith("data: "):
                        body = orjson.loads(line[6:])
                        if body.get("type") == "alert":
                            self.alerts.append(body)
        except httpx.HTTPError:
            pass

    def close(self) -> None:
        self._client.close()


def subscribe(hub: HubProcess, url: str, **extra: object) -> dict[str, object]:
    with hub.client() as client:
        answer = client.post("/v1/webhooks", json={"url": url, **extra})
    assert answer.status_code == 201, answer.text
    created: dict[str, object] = answer.json()
    return created


def signed(secret: str, request: Request) -> bool:
    timestamp = int(request.headers["lastseen-timestamp"])
    return request.headers["lastseen-signature"] == sign(secret, timestamp, request.body)


@pytest.mark.parametrize("cluster", ["postgres", "one_host"], indirect=True)
def test_transitions_caused_on_both_instances_are_each_delivered_once(
    cluster: Callable[[], HubProcess], hook: Hook
) -> None:
    a, b = cluster(), cluster()
    secret = str(subscribe(a, hook.url)["secret"])
    devices = [f"pi-{i}" for i in range(12)]
    clients = [a.client(), b.client()]
    try:
        for i, device in enumerate(devices):  # online on A or B; timeouts fire anywhere
            assert clients[i % 2].post(f"/v1/devices/{device}/heartbeat").status_code == 200
        expected = 3 * len(devices)  # unknown→online→stale→offline each
        until(lambda: len(hook.seen()) >= expected, what=f"{expected} deliveries")
        time.sleep(1.5)  # room for a duplicate to show up, were there one
        requests = hook.seen()
        ids = [r.headers["lastseen-event-id"] for r in requests]
        assert len(ids) == len(set(ids)) == expected
        assert all(signed(secret, r) for r in requests)
        assert all(r.headers["lastseen-attempt"] == "1" for r in requests)
        bodies = [orjson.loads(r.body) for r in requests]
        for device in devices:  # each device's deliveries in its transitions' order
            mine = [x for x in bodies if x["device_id"] == device]
            assert [x["to"] for x in mine] == ["online", "stale", "offline"]
            assert [int(x["id"]) for x in mine] == sorted(int(x["id"]) for x in mine)
    finally:
        for client in clients:
            client.close()


def test_an_instance_killed_mid_retry_leaves_the_delivery_to_the_other(
    cluster: Callable[[], HubProcess], hook: Hook
) -> None:
    a = cluster()  # alone at first, so it is the one that starts the delivery
    hook.statuses = [500, HOLD]
    created = subscribe(a, hook.url, filter={"to": ["online"]})
    secret = str(created["secret"])
    with a.client() as client:
        assert client.post("/v1/devices/pi-k/heartbeat").status_code == 200
    # Attempt 1 fails; A's retry (attempt 2) is held open by the receiver.
    assert hook.held.wait(15)
    b = cluster()
    a.stop(signal.SIGKILL)
    hook.release.set()
    # A's lease on attempt 2 lapses (2 x timeout + 5 s); B takes it over.
    until(lambda: len(hook.seen()) >= 3, what="B's attempt")
    with b.client() as client:
        until(lambda: last_status(client, created["id"]) == "delivered", what="delivered")
        (delivery,) = client.get(f"/v1/webhooks/{created['id']}/deliveries").json()["deliveries"]
    requests = hook.seen()
    assert [r.headers["lastseen-attempt"] for r in requests] == ["1", "2", "3"]
    assert len({r.headers["lastseen-event-id"] for r in requests}) == 1
    assert all(signed(secret, r) for r in requests)
    assert (delivery["attempts"], delivery["last_status"]) == (3, 200)


def test_an_offline_for_rule_fires_once_across_instances(
    cluster: Callable[[], HubProcess], hook: Hook
) -> None:
    a, b = cluster(), cluster()
    subscribe(a, hook.url, filter={"transitions": False, "alerts": True})
    with a.client() as client:
        rule = {"kind": "offline_for", "duration": 1}
        assert client.put("/v1/alert-rules/gone", json=rule).status_code == 201
    with b.client() as client:  # B learns the rule on its next reload (within 5 s)
        until(
            lambda: [r["name"] for r in client.get("/v1/alert-rules").json()["rules"]] == ["gone"],
            what="B sees the rule",
        )
    streams = [AlertStream(a), AlertStream(b)]
    with b.client() as client:
        assert client.post("/v1/devices/pi-a/heartbeat").status_code == 200
    # Offline after 1 s, the rule's deadline 1 s later: both engines reach it.
    until(lambda: len(hook.seen()) >= 1, what="the alert delivery")
    time.sleep(1.5)  # room for a second alert, were there one
    with b.client() as client:
        assert client.post("/v1/devices/pi-a/heartbeat").status_code == 200
    until(lambda: len(hook.seen()) >= 2, what="the resolution")
    time.sleep(1.0)
    bodies = [orjson.loads(r.body) for r in hook.seen()]
    assert [(x["action"], x["alert"]["device_id"]) for x in bodies] == [
        ("opened", "pi-a"),
        ("resolved", "pi-a"),
    ]
    assert bodies[0]["alert"]["key"] == bodies[1]["alert"]["key"]
    for stream in streams:  # whichever instance won, both instances' streams show it once
        until(lambda s=stream: len(s.alerts) >= 2, timeout=5.0, what="alerts on the stream")
        assert [x["action"] for x in stream.alerts] == ["opened", "resolved"]
        stream.close()
    for hub in (a, b):
        with hub.client() as client:
            alerts = client.get("/v1/alerts").json()["alerts"]
        assert [(x["rule"], x["state"]) for x in alerts] == [("gone", "resolved")]
