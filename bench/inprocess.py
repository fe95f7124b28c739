"""The heartbeat routes' own cost, in process: no sockets, no HTTP parser, no client.

The app is called as uvicorn calls it (one ASGI scope, ``receive`` and ``send``), on a
real SQLite hub, so what is measured is exactly the Python work behind a request:
the middleware and routing (or the ingest fast path), authentication, the hub, the
answer's JSON. The bare Starlette route of ``bench/ceiling.py`` is measured the same
way for comparison. Times are CPU time of this process (``time.process_time``), so
other work on a shared machine inflates them less than wall time. ``--profile
single|batch`` adds a cProfile of that loop (stdlib only), sorted by own time.

    .venv/bin/python -m bench.inprocess                       # 10 000 devices
    .venv/bin/python -m bench.inprocess --profile single --top 25
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from bench import ceiling
from bench.common import median, print_table, write_result
from lastseen.http.app import create_app
from lastseen.hub.core import Hub
from lastseen.settings import Settings
from lastseen.store import SQLiteStore

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }


async def drive(app: ASGI, scopes: list[dict[str, Any]], body: bytes) -> list[int]:
    """Call ``app`` once per scope; the statuses it answered."""
    statuses: list[int] = []
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "http.response.start":
            statuses.append(event["status"])

    for scope in scopes:
        await app(dict(scope), receive, send)
    return statuses


async def measure(devices: int, requests: int, profile: str | None, top: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="lastseen-inprocess-") as tmp:
        settings = Settings(
            open=True, stale_after=3600.0, offline_after=7200.0, flush_interval=3600.0
        )
        hub = Hub(settings, SQLiteStore(Path(tmp) / "hub.db"))
        app = create_app(hub)
        async with app.router.lifespan_context(app):
            ids = [f"dev-{i:07d}" for i in range(devices)]
            batches = [
                orjson.dumps({"heartbeats": [{"device_id": d} for d in ids[i : i + 1000]]})
                for i in range(0, devices, 1000)
            ]
            for body in batches:
                assert await drive(app, [_scope("/v1/heartbeats", body)], body) == [200]
            single = [
                _scope(f"/v1/devices/{ids[i % devices]}/heartbeat", b"") for i in range(requests)
            ]
            result: dict[str, float] = {}
            profiler = cProfile.Profile()
            started = time.process_time()
            if profile == "single":
                profiler.enable()
            statuses = await drive(app, single, b"")
            profiler.disable()
            result["heartbeat_us"] = (time.process_time() - started) / requests * 1e6
            assert set(statuses) == {200}, set(statuses)
            body = batches[0]
            rounds = max(1, requests // 1000)
            started = time.process_time()
            if profile == "batch":
                profiler.enable()
            await drive(app, [_scope("/v1/heartbeats", body)] * rounds, body)
            profiler.disable()
            result["batched_us_per_heartbeat"] = (
                (time.process_time() - started) / (rounds * 1000) * 1e6
            )
        bare = [_scope("/ping", b"")] * requests
        started = time.process_time()
        await drive(ceiling.app, bare, b"")
        result["ceiling_us"] = (time.process_time() - started) / requests * 1e6
        if profile:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
            print(out.getvalue())
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", choices=["single", "batch"], help="cProfile one loop")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        result = asyncio.run(measure(args.devices, args.requests, args.profile, args.top))
        result["ratio"] = result["ceiling_us"] / result["heartbeat_us"]
        print({k: round(v, 3) for k, v in result.items()}, flush=True)
        runs.append(result)
    summary = {k: round(median([r[k] for r in runs]), 3) for k in runs[0]}
    rows = [
        ("single heartbeat", f"{summary['heartbeat_us']:.1f} µs CPU per request"),
        ("bare Starlette route", f"{summary['ceiling_us']:.1f} µs CPU per request"),
        ("ceiling / heartbeat", f"{summary['ratio']:.2f}"),
        ("batched (1000 a request)", f"{summary['batched_us_per_heartbeat']:.2f} µs per heartbeat"),
    ]
    print_table(f"In-process cost, {args.devices} devices (median of {args.runs})", rows)
    print(f"\nwrote {write_result('inprocess', summary, runs)}")


if __name__ == "__main__":
    main()
