"""End-to-end: the real ``lastseen serve`` process over real HTTP, SSE and WebSocket.

The hub runs with stale after 0.5 s and offline after 1 s, so these use real time;
bounds are generous (they prove behaviour, benchmarks measure speed).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from lastseen.testing import HubProcess

pytestmark = pytest.mark.e2e


def sse_events(
    hub: HubProcess,
    path: str,
    count: int,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Read ``count`` SSE transition events (other events and comments skipped)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with httpx.stream("GET", hub.url + path, timeout=timeout, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        deadline = time.monotonic() + timeout
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                break
            if not line:
                if "data" in current and current.get("event") == "transition":
                    events.append(current)
                    if len(events) == count:
                        break
                current = {}
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                current["data"] = json.loads(value)
            elif field in ("event", "id"):
                current[field] = value
    return events


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_heartbeat_is_online_on_get_sse_and_websocket_then_times_out_in_order(
    hub: HubProcess,
) -> None:
    collected: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: collected.extend(sse_events(hub, "/v1/stream?after=0", 3))
    )
    reader.start()
    with connect(hub.url.replace("http", "ws") + "/v1/ws", open_timeout=5) as ws:
        snapshot = json.loads(ws.recv(timeout=5))
        assert snapshot["type"] == "snapshot"
        assert snapshot["devices"] == []
        with hub.client() as client:
            beat = client.post("/v1/devices/pi-1/heartbeat", json={"attributes": {"fw": "2"}})
            assert beat.status_code == 200
            assert beat.json()["status"] == "online"
            device = client.get("/v1/devices/pi-1").json()
            assert device["status"] == "online"
            assert device["attributes"] == {"fw": "2"}
        transitions = []
        while len(transitions) < 3:
            message = json.loads(ws.recv(timeout=5))
            if message["type"] == "transition":
                transitions.append(message)
    reader.join(10)
    assert [(m["from"], m["to"], m["reason"]) for m in transitions] == [
        ("unknown", "online", "heartbeat"),
        ("online", "stale", "timeout:stale_after"),
        ("stale", "offline", "timeout:offline_after"),
    ]
    assert [m["seq"] for m in transitions] == [1, 2, 3]
    assert [(e["event"], e["id"], e["data"]["to"]) for e in collected] == [
        ("transition", "1", "online"),
        ("transition", "2", "stale"),
        ("transition", "3", "offline"),
    ]
    with hub.client() as client:
        assert client.get("/v1/devices/pi-1").json()["status"] == "offline"
        listed = client.get("/v1/devices", params={"status": "offline"}).json()
        assert [d["id"] for d in listed["devices"]] == ["pi-1"]
        assert listed["seq"] == 3


def test_a_resuming_subscriber_gets_exactly_what_it_missed(hub: HubProcess) -> None:
    with hub.client() as client:
        for name in ("a", "b"):
            client.post(f"/v1/devices/{name}/heartbeat")
        first = sse_events(hub, "/v1/stream?after=0&device=a&device=b", 2)
        last_seen_id = first[-1]["id"]
        client.post("/v1/devices/c/heartbeat")  # filtered out
        client.post("/v1/devices/a/heartbeat")  # no transition: already online
    # a and b go stale, then offline, while the subscriber is away.
    missed = sse_events(
        hub, "/v1/stream?device=a&device=b", 4, headers={"Last-Event-ID": last_seen_id}
    )
    assert [(e["data"]["device_id"], e["data"]["to"]) for e in missed] == [
        ("a", "stale"),
        ("b", "stale"),
        ("a", "offline"),
        ("b", "offline"),
    ] or sorted((e["data"]["device_id"], e["data"]["to"]) for e in missed) == [
        ("a", "offline"),
        ("a", "stale"),
        ("b", "offline"),
        ("b", "stale"),
    ]
    seqs = [int(e["id"]) for e in missed]
    assert seqs == sorted(seqs)
    assert seqs[0] > int(last_seen_id)


def test_restart_keeps_devices_history_and_seq_and_fires_missed_deadlines(
    hub: HubProcess,
) -> None:
    with hub.client() as client:
        client.put("/v1/devices/keeper", json={"labels": {"site": "north"}})
        client.post("/v1/devices/keeper/heartbeat")
    assert hub.stop() == 0
    time.sleep(1.5)  # down past both deadlines of `keeper`
    hub.start()
    with hub.client() as client:
        device = client.get("/v1/devices/keeper").json()
        assert device["status"] == "offline"
        assert device["labels"] == {"site": "north"}
        events = client.get("/v1/events").json()["events"]
        assert [(e["seq"], e["to"], e["reason"]) for e in events] == [
            (1, "online", "heartbeat"),
            (2, "stale", "timeout:stale_after"),
            (3, "offline", "timeout:offline_after"),
        ]
        # Stamped at their deadlines, not at the restart.
        online_at, stale_at = events[0]["at"], events[1]["at"]
        assert _seconds(stale_at) - _seconds(online_at) == pytest.approx(0.5, abs=0.002)
        client.post("/v1/devices/keeper/heartbeat")
        assert client.get("/v1/events", params={"after": 3}).json()["events"][0]["seq"] == 4


def _drain(ws: ClientConnection) -> None:
    while True:
        ws.recv(timeout=5)


def _seconds(stamp: str) -> float:
    from lastseen.timefmt import parse_rfc3339

    return parse_rfc3339(stamp)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/devices/bad%20id/heartbeat", None, 400, "invalid_device_id"),
        ("POST", "/v1/devices/" + "x" * 129 + "/heartbeat", None, 400, "invalid_device_id"),
        ("POST", "/v1/devices/ok/heartbeat", b"{not json", 400, "invalid_json"),
        ("POST", "/v1/devices/ok/heartbeat", b"[1, 2]", 400, "invalid_body"),
        ("POST", "/v1/devices/ok/heartbeat", b'{"attributs": {}}', 400, "unknown_field"),
        ("POST", "/v1/devices/ok/heartbeat", b'{"metrics": {"t": "hot"}}', 400, "invalid_metrics"),
        ("POST", "/v1/devices/ok/heartbeat", b"x" * 2_000_000, 413, "payload_too_large"),
        ("POST", "/v1/heartbeats", b'{"heartbeats": 3}', 400, "invalid_body"),
        ("PUT", "/v1/devices/ok", b'{"profile": "nope"}', 400, "unknown_profile"),
        ("PUT", "/v1/devices/ok", b'{"labels": {"a": 1}}', 400, "invalid_labels"),
        ("GET", "/v1/devices/missing", None, 404, "not_found"),
        ("GET", "/v1/devices?status=asleep", None, 400, "invalid_status"),
        ("GET", "/v1/events?after=-1", None, 400, "invalid_parameter"),
        ("DELETE", "/v1/devices/missing", None, 404, "not_found"),
        ("PATCH", "/v1/devices/ok", None, 405, "method_not_allowed"),
    ],
)
def test_bad_input_gets_a_coded_4xx_and_changes_nothing(
    hub: HubProcess, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    with hub.client() as client:
        before = (client.get("/v1/devices").json(), client.get("/v1/events").json())
        response = client.request(method, path, content=body)
        assert response.status_code == status
        assert response.json()["code"] == code
        assert response.json()["message"]
        after = (client.get("/v1/devices").json(), client.get("/v1/events").json())
        assert after == before
        metrics = client.get("/metrics").text
        assert f'lastseen_rejected_total{{code="{code}"}} 1' in metrics


def _wait_for_subscribers(hub: HubProcess, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with hub.client() as client:
        while time.monotonic() < deadline:
            for line in client.get("/metrics").text.splitlines():
                if (
                    line.startswith("lastseen_stream_subscribers ")
                    and float(line.split()[1]) >= count
                ):
                    return
            time.sleep(0.05)
    raise AssertionError(f"fewer than {count} stream subscribers after {timeout}s")


def test_sigterm_closes_streams_flushes_and_exits_zero(hub: HubProcess) -> None:
    with hub.client() as client:
        client.post("/v1/devices/flush-me/heartbeat")
    done = threading.Event()

    def hold_stream() -> None:
        sse_events(hub, "/v1/stream", 1000, timeout=20)
        done.set()

    holder = threading.Thread(target=hold_stream)
    holder.start()
    with connect(hub.url.replace("http", "ws") + "/v1/ws", open_timeout=5) as ws:
        ws.recv(timeout=5)
        # Both streams must be open before the signal: a stream still connecting when
        # it arrives is cut by the server's grace timeout instead (seen under load).
        _wait_for_subscribers(hub, 2)
        started = time.monotonic()
        assert hub.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5
        with pytest.raises(ConnectionClosed) as closed:
            _drain(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001  # going away
    holder.join(5)
    assert done.is_set()
