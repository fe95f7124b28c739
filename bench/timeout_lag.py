"""Timeout detection lag: how late after its deadline a timeout reaches a subscriber.

Two scenarios against a real hub process:

* spread: N devices whose stale deadlines are spread over 10 s;
* burst: N devices whose deadlines all fall within about one second.

For every ``online → stale`` transition a WebSocket subscriber records
``received - at`` (``at`` is the deadline: the hub stamps timeouts with it), which
bounds detection + commit + publish + delivery. The hub's own histogram
(``lastseen_timeout_lag_seconds``, deadline → publication) is reported too.

    .venv/bin/python -m bench.timeout_lag                 # 100 000 devices, 3 runs
    .venv/bin/python -m bench.timeout_lag --devices 5000 --runs 1   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

from bench.common import median, percentile, print_table, write_result
from lastseen.testing import HubProcess
from lastseen.timefmt import parse_rfc3339

BATCH = 1000


async def _send(url: str, ids: list[str], spread: float) -> float:
    """Heartbeat every id once, in batches, evenly over ``spread`` seconds."""
    batches = [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for index, batch in enumerate(batches):
            if spread:
                wait = started + spread * index / len(batches) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            body = orjson.dumps({"heartbeats": [{"device_id": d} for d in batch]})
            response = await client.post(
                "/v1/heartbeats", content=body, headers={"content-type": "application/json"}
            )
            response.raise_for_status()
    return time.monotonic() - started


async def _collect(ws_url: str, expected: int, ready: asyncio.Event, timeout: float) -> list[float]:
    lags: list[float] = []
    async with websockets.connect(ws_url, max_size=None, max_queue=None) as ws:
        await ws.recv()  # snapshot
        ready.set()
        deadline = time.monotonic() + timeout
        while len(lags) < expected and time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
            except TimeoutError:
                break
            now = time.time()
            message = orjson.loads(raw)
            if message.get("type") == "transition" and message["to"] == "stale":
                lags.append(now - parse_rfc3339(message["at"]))
    return lags


def _hub_quantiles(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics").text
    buckets = [
        (float(m.group(1)), int(m.group(2)))
        for m in re.finditer(r'lastseen_timeout_lag_seconds_bucket\{le="([^"]+)"\} (\d+)', text)
        if m.group(1) != "+Inf"
    ]
    count = int(re.search(r"lastseen_timeout_lag_seconds_count (\d+)", text).group(1))  # type: ignore[union-attr]

    def q(p: float) -> float:
        for bound, running in buckets:
            if running >= p * count:
                return bound
        return float("inf")

    return {"p50_le": q(0.5), "p99_le": q(0.99), "count": count}


async def _run(devices: int, scenario: str, workdir: Path) -> dict[str, Any]:
    stale_after = 12.0 if scenario == "spread" else 4.0
    spread = 10.0 if scenario == "spread" else 0.0
    # The measuring subscriber must hold a whole burst: a dashboard that falls this
    # far behind is reset by design, which is not what is measured here.
    config = workdir / "timeout_lag.toml"
    config.write_text(f"[streams]\nsubscriber_queue = {devices * 2}\n")
    hub = HubProcess(
        workdir / f"{scenario}-{time.monotonic_ns()}",
        "--stale-after", str(stale_after), "--offline-after", "600", "--log-level", "warning",
        "--config", str(config),
    )  # fmt: skip
    hub.start()
    try:
        ready = asyncio.Event()
        ids = [f"dev-{i:07d}" for i in range(devices)]
        collector = asyncio.create_task(
            _collect(
                hub.url.replace("http", "ws") + "/v1/ws?status=stale",
                devices,
                ready,
                timeout=stale_after + spread + 60,
            )
        )
        await ready.wait()
        send_seconds = await _send(hub.url, ids, spread)
        lags = await collector
        received_all = len(lags) == devices
        return {
            "scenario": scenario,
            "devices": devices,
            "send_seconds": round(send_seconds, 3),
            "received": len(lags),
            "all_received": received_all,
            "lag_p50_ms": round(percentile(lags, 0.5) * 1000, 1),
            "lag_p99_ms": round(percentile(lags, 0.99) * 1000, 1),
            "lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
            "hub_histogram": _hub_quantiles(hub.url),
        }
    finally:
        hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", choices=["spread", "burst", "both"], default="both")
    args = parser.parse_args()
    scenarios = ["spread", "burst"] if args.scenario == "both" else [args.scenario]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
        for scenario in scenarios:
            for _ in range(args.runs):
                result = asyncio.run(_run(args.devices, scenario, Path(tmp)))
                print(result, flush=True)
                runs.append(result)
    summary: dict[str, Any] = {}
    rows = []
    for scenario in scenarios:
        mine = [r for r in runs if r["scenario"] == scenario]
        summary[scenario] = {
            key: median([r[key] for r in mine])
            for key in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms", "send_seconds")
        }
        summary[scenario]["all_received"] = all(r["all_received"] for r in mine)
        s = summary[scenario]
        rows.append(
            (
                f"{scenario} ({args.devices} devices, median of {len(mine)})",
                f"p50 {s['lag_p50_ms']} ms  p99 {s['lag_p99_ms']} ms  max {s['lag_max_ms']} ms  "
                f"all received: {s['all_received']}",
            )
        )
    print_table("timeout detection lag (received - deadline)", rows)
    print(f"\nwrote {write_result('timeout_lag', summary, runs)}")


if __name__ == "__main__":
    main()
