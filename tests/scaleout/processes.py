"""Helpers for the end-to-end scale-out tests: real instances, an SSE subscriber in a
thread, and the transitions as Redis's stream and PostgreSQL's events table hold them."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import redis

from lastseen.testing import HubProcess


def until(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.05)


def instances(
    tmp_path: Path,
    url: str,
    prefix: str,
    count: int,
    *args: str,
    env: dict[str, str] | None = None,
) -> list[HubProcess]:
    data = tmp_path / "data"  # one SQLite store shared by the instances on this host
    hubs = [
        HubProcess(data, "--redis", url, "--redis-prefix", prefix, *args, env=env, open_auth=True)
        for _ in range(count)
    ]
    for i, hub in enumerate(hubs):
        hub.log_path = tmp_path / f"instance-{i}.log"
        hub.start()
    return hubs


@contextlib.contextmanager
def running(
    tmp_path: Path, url: str, prefix: str, count: int, *args: str
) -> Iterator[list[HubProcess]]:
    """``instances``, stopped when the block ends."""
    hubs = instances(tmp_path, url, prefix, count, *args)
    try:
        yield hubs
    finally:
        for hub in hubs:
            hub.stop()


FAST = ("--stale-after", "2", "--offline-after", "3")


class SSE:
    """An SSE subscriber in a thread, collecting transition events."""

    def __init__(self, url: str) -> None:
        self.events: list[dict[str, object]] = []
        self.connected = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()
        assert self.connected.wait(5.0)

    def _run(self, url: str) -> None:
        try:
            with self._client.stream("GET", url + "/v1/stream") as answer:
                self.connected.set()
                for line in answer.iter_lines():
                    if line.startswith("data: "):
                        body = json.loads(line[6:])
                        if body.get("type") == "transition":
                            self.events.append(body)
        except httpx.HTTPError:
            pass

    def close(self) -> None:
        self._client.close()


def stream_pairs(url: str, prefix: str) -> list[tuple[int, str, str]]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        entries = client.xrange("{" + prefix + "}:events", "-", "+")
    finally:
        client.close()
    return [(int(i.split("-")[0]), f["d"], f["t"]) for i, f in entries]


def store_events(dsn: str) -> list[tuple[int, str, str]]:
    """Every transition in PostgreSQL, duplicates included (seq is the primary key, so a
    duplicate would be a second seq for one (device, status): checked by the caller)."""
    with psycopg.connect(dsn) as db:
        rows = db.execute("SELECT seq, device_id, to_status FROM events ORDER BY seq").fetchall()
    return [(int(s), str(d), str(t)) for s, d, t in rows]


class SteadyLoad:
    """Heartbeats for a few devices, alternating instances, every ``every`` seconds, in a
    thread; each answer's status code (or the transport error's name) is kept."""

    def __init__(self, hubs: list[HubProcess], devices: int = 4, every: float = 0.05) -> None:
        self.answers: list[int | str] = []
        self._hubs = hubs
        self._devices = devices
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        clients = [hub.client() for hub in self._hubs]
        try:
            i = 0
            while not self._stop.is_set():
                client = clients[i % len(clients)]
                try:
                    path = f"/v1/devices/steady-{i % self._devices}/heartbeat"
                    code: int | str = client.post(path).status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                self.answers.append(code)
                i += 1
                self._stop.wait(self._every)
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
