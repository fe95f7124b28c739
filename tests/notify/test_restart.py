"""A delivery queued before a restart of a real ``lastseen serve`` still arrives."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lastseen.testing import HubProcess

ADMIN = "restart-admin-key"


class _Hook(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        with self.server.lock:
            self.server.seen.append(self.headers.get("Lastseen-Event-Id", ""))
            status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    seen: list[str]
    statuses: list[int]
    lock: threading.Lock


@pytest.fixture
def hook() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Hook)
    server.seen, server.statuses, server.lock = [], [500], threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _wait(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_restart_mid_retry_still_delivers(tmp_path: Path, hook: _Server) -> None:
    env = {
        "LASTSEEN_ADMIN_KEY": ADMIN,
        # Full jitter under 4 s: the retry usually comes after the restart below.
        "LASTSEEN_WEBHOOK_BACKOFF": "4",
        "LASTSEEN_WEBHOOK_BACKOFF_MAX": "4",
    }
    hub = HubProcess(tmp_path / "data", "--webhook-allow-private", env=env)
    hub.start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
        with hub.client() as client:
            created = client.post("/v1/webhooks", json={"url": url}).json()
            client.post("/v1/devices/pi-r/heartbeat")
        _wait(lambda: len(hook.seen) == 1)
        hub.restart()
        _wait(lambda: len(hook.seen) == 2)
        with hub.client() as client:
            _wait(
                lambda: (
                    client.get(f"/v1/webhooks/{created['id']}/deliveries").json()["deliveries"][0][
                        "status"
                    ]
                    == "delivered"
                )
            )
        assert hook.seen[0] == hook.seen[1] != ""
    finally:
        hub.stop()
