"""The heartbeat routes' own cost, in process: no sockets, no HTTP parser, no client.

The app is called as uvicorn calls it (one ASGI scope, ``receive`` and ``send``), on a
real SQLite hub, so what is measured is exactly the Python work behind a request:
the middleware and routing (or the ingest fast path), authentication, the hub, the
answer's JSON. The bare Starlette route of ``bench/ceiling.py`` is measured the same
way for comparison. Times are CPU time of this process (``time.process_time``), so
other work on a shared machine inflates them less than wall time, and the loops take
turns in ``ROUNDS`` short rounds, each keeping its fastest, so load that comes and
goes biases none of them. The hub's own calls (``Hub.heartbeat``, and
``Hub.heartbeat_statuses`` as the batch route calls it, awaited directly, no HTTP
layer) are timed the same way, so what the HTTP layer adds is the difference. ``--keyed`` sends
an ingest key (``Authorization: Bearer``) to a keyed hub instead of using ``--open``.
``--profile single|batch`` adds a cProfile of that loop (stdlib only), sorted by own
time.

    .venv/bin/python -m bench.inprocess                       # 10 000 devices
    .venv/bin/python -m bench.inprocess --profile single --top 25
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import random
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
from lastseen.presence import Profile, ProfileRegistry
from lastseen.security import Role
from lastseen.settings import Settings
from lastseen.store import SQLiteStore

#: Turns each loop takes (see ``measure``).
ROUNDS = 5
#: Distinct batch bodies the batched loops rotate among, as in bench.heartbeat_throughput.
BODIES = 32
ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _scope(path: str, body: bytes, key: bytes | None = None) -> dict[str, Any]:
    auth = [] if key is None else [(b"authorization", b"Bearer " + key)]
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
            *auth,
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


async def measure(
    devices: int, requests: int, profile: str | None, top: int, keyed: bool = False
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="lastseen-inprocess-") as tmp:
        # Thresholds far beyond the run: no device expires while it is measured.
        profiles = ProfileRegistry([Profile(stale_after=3600.0, offline_after=7200.0)])
        settings = Settings(open=not keyed, profiles=profiles, flush_interval=3600.0)
        hub = Hub(settings, SQLiteStore(Path(tmp) / "hub.db"))
        app = create_app(hub)
        async with app.router.lifespan_context(app):
            key = None
            if keyed:
                created = await app.state.security.keyring.create(
                    Role.INGEST, "bench", created_by="bench"
                )
                key = created[1].encode()
            ids = [f"dev-{i:07d}" for i in range(devices)]
            batches = [
                orjson.dumps({"heartbeats": [{"device_id": d} for d in ids[i : i + 1000]]})
                for i in range(0, devices, 1000)
            ]
            for body in batches:
                assert await drive(app, [_scope("/v1/heartbeats", body, key)], body) == [200]
            # Devices drawn from the whole fleet, as bench.heartbeat_throughput's wrk
            # script draws them (with 10^6 devices most reads then miss the caches).
            pick = random.Random(1)
            single = [
                _scope(f"/v1/devices/{ids[pick.randrange(devices)]}/heartbeat", b"", key)
                for _ in range(requests)
            ]
            # Batches of devices drawn from the whole fleet, as bench.heartbeat_throughput
            # sends them: with 10^6 devices each heartbeat then reads memory the
            # caches do not hold.
            drawn = [pick.sample(ids, min(1000, devices)) for _ in range(BODIES)]
            bodies = [
                orjson.dumps({"heartbeats": [{"device_id": d} for d in batch]}) for batch in drawn
            ]
            batch_scope = _scope("/v1/heartbeats", bodies[0], key)
            item_lists = [[(d, None, None) for d in batch] for batch in drawn]
            bare = _scope("/ping", b"")
            profiler = cProfile.Profile()

            async def single_loop(part: list[dict[str, Any]]) -> None:
                statuses = await drive(app, part, b"")
                assert set(statuses) == {200}, set(statuses)

            async def batch_loop(part: list[dict[str, Any]]) -> None:
                for i in range(max(1, len(part) // 1000)):
                    await drive(app, [batch_scope], bodies[i % BODIES])

            async def hub_single(part: list[dict[str, Any]]) -> None:
                for scope in part:
                    await hub.heartbeat(scope["path"][12:-10])

            async def hub_batch(part: list[dict[str, Any]]) -> None:
                for i in range(max(1, len(part) // 1000)):
                    await hub.heartbeat_statuses(item_lists[i % BODIES])

            async def ceiling_loop(part: list[dict[str, Any]]) -> None:
                await drive(ceiling.app, [bare] * len(part), b"")

            loops = {
                "heartbeat_us": (single_loop, 1, "single"),
                "batched_us_per_heartbeat": (batch_loop, 1000, "batch"),
                "hub_heartbeat_us": (hub_single, 1, None),
                "hub_batched_us_per_heartbeat": (hub_batch, 1000, None),
                "ceiling_us": (ceiling_loop, 1, None),
            }
            # The loops take turns in short rounds, and each keeps its fastest round:
            # on a shared machine, load that comes and goes then biases none of them.
            times: dict[str, list[float]] = {name: [] for name in loops}
            size = max(1000, requests // ROUNDS)
            for round_ in range(ROUNDS):
                part = single[round_ * size : (round_ + 1) * size] or single[:size]
                for name, (loop, per, profiled) in loops.items():
                    if profile is not None and profile == profiled:
                        profiler.enable()
                    started = time.process_time()
                    await loop(part)
                    elapsed = time.process_time() - started
                    profiler.disable()
                    count = len(part) if per == 1 else max(1, len(part) // 1000) * 1000
                    times[name].append(elapsed / count * 1e6)
            result = {name: min(values) for name, values in times.items()}
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
    parser.add_argument("--keyed", action="store_true", help="an ingest key, not --open")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        result = asyncio.run(
            measure(args.devices, args.requests, args.profile, args.top, args.keyed)
        )
        result["ratio"] = result["ceiling_us"] / result["heartbeat_us"]
        print({k: round(v, 3) for k, v in result.items()}, flush=True)
        runs.append(result)
    summary = {k: round(median([r[k] for r in runs]), 3) for k in runs[0]}
    rows = [
        ("single heartbeat", f"{summary['heartbeat_us']:.1f} µs CPU per request"),
        ("bare Starlette route", f"{summary['ceiling_us']:.1f} µs CPU per request"),
        ("ceiling / heartbeat", f"{summary['ratio']:.2f}"),
        ("batched (1000 a request)", f"{summary['batched_us_per_heartbeat']:.2f} µs per heartbeat"),
        ("of which the hub: single", f"{summary['hub_heartbeat_us']:.1f} µs (Hub.heartbeat)"),
        (
            "of which the hub: batched",
            f"{summary['hub_batched_us_per_heartbeat']:.2f} µs a heartbeat (heartbeat_statuses)",
        ),
    ]
    mode = "ingest key" if args.keyed else "open"
    title = f"In-process cost, {args.devices} devices, {mode} (median of {args.runs})"
    print_table(title, rows)
    print(f"\nwrote {write_result('inprocess', summary, runs)}")


if __name__ == "__main__":
    main()
