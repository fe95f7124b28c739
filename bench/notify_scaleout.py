"""Webhook deliveries per second in scale-out mode, with 1 and 2 instances.

Each run starts ``lastseen serve --redis --postgres`` instances sharing the machine's
Redis (a private key prefix) and a fresh PostgreSQL database (both removed
afterwards), subscribes one webhook to a threaded HTTP receiver on loopback, then
registers ``--devices`` new devices in batches of 1 000 (one ``unknown → online``
transition each, so one delivery each) and times until the receiver has them all.
It also counts event ids received more than once (must be 0).

One subscription is held to ``webhook_subscription_concurrency`` (4) requests in
flight per instance, so the figure shows how claims spread over the instances.

    .venv/bin/python -m bench.notify_scaleout                    # 1 and 2 instances, 3 runs
    .venv/bin/python -m bench.notify_scaleout --runs 1 --devices 500   # quick

Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (user postgres).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.common import median, print_table, write_result
from lastseen.testing import HubProcess

ADMIN = "bench-notify-admin-key"


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True
    ids: list[str]
    lock: threading.Lock


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.ids.append(self.headers.get("Lastseen-Event-Id", ""))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _Handler)
    server.ids, server.lock = [], threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def database() -> Iterator[str]:
    name = f"lastseen_bench_{uuid.uuid4().hex[:12]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def instances(count: int, url: str, prefix: str, dsn: str) -> Iterator[list[HubProcess]]:
    env = {"LASTSEEN_ADMIN_KEY": ADMIN}
    with tempfile.TemporaryDirectory(prefix="lastseen-notify-bench-") as tmp:
        hubs = []
        try:
            for i in range(count):
                hub = HubProcess(
                    Path(tmp) / f"data-{i}",
                    "--redis", url, "--redis-prefix", prefix, "--postgres", dsn,
                    "--webhook-allow-private", "--log-level", "warning",
                    env=env,
                )  # fmt: skip
                hub.log_path = Path(tmp) / f"instance-{i}.log"
                hub.start()
                hubs.append(hub)
            yield hubs
        finally:
            for hub in hubs:
                hub.stop()


def deliveries(hubs: list[HubProcess], hook: _Receiver, devices: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
    with hubs[0].client() as client:
        assert client.post("/v1/webhooks", json={"url": url}).status_code == 201
    time.sleep(0.5)  # every instance's notifier has loaded the subscription (reload 5 s)
    started = time.perf_counter()
    for start in range(0, devices, 1000):
        batch = [{"device_id": f"d{i:06d}"} for i in range(start, min(start + 1000, devices))]
        with hubs[(start // 1000) % len(hubs)].client() as client:
            answer = client.post("/v1/heartbeats", json={"heartbeats": batch})
            assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 120
    while True:
        with hook.lock:
            unique = len(set(hook.ids))
        if unique >= devices or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    time.sleep(1.0)  # late duplicates, were there any
    with hook.lock:
        ids = list(hook.ids)
    return {
        "seconds": elapsed,
        "deliveries_per_s": len(set(ids)) / elapsed,
        "received": len(ids),
        "duplicates": len(ids) - len(set(ids)),
        "missing": devices - len(set(ids)),
    }


def _cleanup(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"*{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--devices", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--instances", default="1,2")
    options = parser.parse_args()
    runs: list[dict[str, Any]] = []
    for run in range(options.runs):
        # Alternate the configurations within each round: the machine is shared.
        for count in (int(n) for n in options.instances.split(",")):
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            try:
                with (
                    database() as dsn,
                    receiver() as hook,
                    instances(count, options.redis, prefix, dsn) as hubs,
                ):
                    result = deliveries(hubs, hook, options.devices)
            finally:
                _cleanup(options.redis, prefix)
            runs.append({"instances": count, "run": run, **result})
            print(f"instances={count} run={run} {result}", flush=True)
    summary: dict[str, Any] = {}
    rows = []
    for count in sorted({r["instances"] for r in runs}):
        mine = [r for r in runs if r["instances"] == count]
        entry = {
            "deliveries_per_s": median([r["deliveries_per_s"] for r in mine]),
            "duplicates": sum(r["duplicates"] for r in mine),
            "missing": sum(r["missing"] for r in mine),
        }
        summary[f"instances_{count}"] = entry
        rows.append(
            (
                f"{count} instance(s)",
                f"{entry['deliveries_per_s']:.0f} deliveries/s (median of {len(mine)}), "
                f"duplicates {entry['duplicates']}, missing {entry['missing']}",
            )
        )
    path = write_result("notify_scaleout", summary, runs)
    print_table(f"webhook deliveries, {options.devices} transitions, one subscription", rows)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
