"""HTTP heartbeat throughput of one hub process, against the framework's ceiling.

For each fleet size the hub is started, every device is made online with batched
heartbeats, then ``wrk`` (keep-alive connections, one request per heartbeat, a random
device each time) drives ``POST /v1/devices/{id}/heartbeat``: the hot path. The same
``wrk`` run against a trivial route on the same server stack (bench/ceiling.py) gives
the ceiling (measured before and after the hub, averaged). Then batched heartbeats
(``POST /v1/heartbeats``, 1000 per request) are sent from several concurrent Python
clients.

    .venv/bin/python -m bench.heartbeat_throughput                    # 10k and 1M, 3 runs
    .venv/bin/python -m bench.heartbeat_throughput --devices 10000 --runs 1 --seconds 3

Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import median, print_table, write_result
from lastseen.testing import HubProcess, free_port

LUA = """
local n = tonumber(os.getenv("DEVICES"))
math.randomseed(tonumber(os.getenv("SEED")))
request = function()
  return wrk.format("POST", string.format("/v1/devices/dev-%07d/heartbeat",
                    math.random(0, n - 1)), nil, "")
end
"""
CEILING_LUA = 'wrk.method = "POST"\n'


def wrk(url: str, seconds: float, connections: int, script: Path | None, devices: int = 0) -> float:
    """Requests per second that wrk measured (non-2xx responses are an error)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s"]
    if script is not None:
        command += ["-s", str(script)]
    env = {**os.environ, "DEVICES": str(devices), "SEED": str(time.time_ns() % 100000)}
    out = subprocess.run([*command, url], capture_output=True, text=True, env=env, check=True)
    if "Non-2xx" in out.stdout:
        raise RuntimeError(f"wrk saw errors:\n{out.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if match is None:
        raise RuntimeError(out.stdout + out.stderr)
    return float(match.group(1))


def _bodies(devices: int, batch: int) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "heartbeats": [
                    {"device_id": f"dev-{i:07d}"} for i in range(start, min(start + batch, devices))
                ]
            }
        )
        for start in range(0, devices, batch)
    ]


async def batched(url: str, bodies: list[bytes], seconds: float, concurrency: int = 4) -> float:
    """Heartbeats per second through POST /v1/heartbeats with ``concurrency`` clients."""
    sent = 0
    stop = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal sent
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            index = offset
            while time.monotonic() < stop:
                body = bodies[index % len(bodies)]
                response = await client.post(
                    "/v1/heartbeats",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                response.raise_for_status()
                sent += response.json()["accepted"]
                index += concurrency

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return sent / (time.monotonic() - started)


def ceiling(seconds: float, connections: int, workdir: Path) -> float:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.ceiling", str(port)])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.post(f"http://127.0.0.1:{port}/ping", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        script = workdir / "ceiling.lua"
        script.write_text(CEILING_LUA)
        return wrk(f"http://127.0.0.1:{port}/ping", seconds, connections, script)
    finally:
        proc.terminate()
        proc.wait()


def run_once(devices: int, seconds: float, connections: int, workdir: Path) -> dict[str, Any]:
    # The ceiling is measured just before and just after the hub and averaged, so a
    # change in the machine's load during the run biases the ratio less.
    before = ceiling(seconds, connections, workdir)
    hub = HubProcess(
        workdir / f"hub-{time.monotonic_ns()}",
        "--stale-after",
        "3600",
        "--offline-after",
        "7200",
        "--log-level",
        "warning",
    )
    hub.start()
    script = workdir / "heartbeat.lua"
    script.write_text(LUA)
    try:
        bodies = _bodies(devices, 1000)
        started = time.monotonic()
        with httpx.Client(base_url=hub.url, timeout=120) as client:
            for body in bodies:
                client.post(
                    "/v1/heartbeats", content=body, headers={"content-type": "application/json"}
                ).raise_for_status()
        register_seconds = time.monotonic() - started
        single = wrk(hub.url, seconds, connections, script, devices)
        batch = asyncio.run(batched(hub.url, bodies, seconds))
        rss = httpx.get(hub.url + "/healthz").json()["memory_rss"]
    finally:
        hub.stop()
    after = ceiling(seconds, connections, workdir)
    top = (before + after) / 2
    return {
        "devices": devices,
        "register_seconds": round(register_seconds, 2),
        "heartbeat_rps": round(single),
        "ceiling_rps": round(top),
        "ceiling_before_after": [round(before), round(after)],
        "ratio": round(single / top, 3),
        "batched_hps": round(batch),
        "hub_rss_bytes": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    runs = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
        for devices in args.devices:
            for _ in range(args.runs):
                result = run_once(devices, args.seconds, args.connections, Path(tmp))
                print(result, flush=True)
                runs.append(result)
    summary = {}
    rows = []
    for devices in args.devices:
        mine = [r for r in runs if r["devices"] == devices]
        s = {
            k: median([r[k] for r in mine])
            for k in ("heartbeat_rps", "ceiling_rps", "ratio", "batched_hps")
        }
        summary[str(devices)] = s
        rows.append(
            (
                f"{devices} devices (median of {len(mine)})",
                f"heartbeat {s['heartbeat_rps']:.0f} req/s  ceiling {s['ceiling_rps']:.0f} "
                f"req/s  ratio {s['ratio']:.2f}  batched {s['batched_hps']:.0f} hb/s",
            )
        )
    print_table("HTTP heartbeat throughput", rows)
    print(f"\nwrote {write_result('heartbeat_throughput', summary, runs)}")


if __name__ == "__main__":
    main()
