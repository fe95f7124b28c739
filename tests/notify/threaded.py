"""A threaded HTTP receiver on loopback for tests that drive real ``lastseen serve``
processes (synchronous tests: the hubs are subprocesses, the receiver a thread)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOLD = -1  # a status that means: hold the request open until released


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes


@dataclass
class Hook:
    """What the receiver saw, and what it answers next (then 200)."""

    requests: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def seen(self) -> list[Request]:
        with self.lock:
            return list(self.requests)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        hook = self.server.hook
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with hook.lock:
            hook.requests.append(Request({k.lower(): v for k, v in self.headers.items()}, body))
            status = hook.statuses.pop(0) if hook.statuses else 200
        if status == HOLD:
            hook.held.set()
            hook.release.wait(30)
            status = 200
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass  # the sender is gone (SIGKILLed while we held its request)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hook: Hook


@contextlib.contextmanager
def serve_hook() -> Iterator[Hook]:
    """A receiver on a free loopback port, for as long as the context lasts."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.hook = Hook(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.hook
    finally:
        server.hook.release.set()
        server.shutdown()
        server.server_close()


def until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``check`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.05)


def last_status(client: httpx.Client, webhook_id: object) -> str:
    """The status of the subscription's newest delivery."""
    rows = client.get(f"/v1/webhooks/{webhook_id}/deliveries").json()["deliveries"]
    return str(rows[0]["status"]) if rows else ""
