"""HTTP heartbeat throughput of one hub process, against the framework's ceiling.

For each fleet size the hub is started, every device is made online with batched
heartbeats, then ``wrk`` (keep-alive connections, one request per heartbeat, a random
device each time) drives ``POST /v1/devices/{id}/heartbeat``: the hot path. The same
``wrk`` run against a trivial route on the same server stack (bench/ceiling.py) gives
the ceiling; the two alternate in one-second slices (ceiling first and last), and the
ratio is the median of each hub slice against the ceiling slices around it. Then batched heartbeats
(``POST /v1/heartbeats``, 1 000 per request) are sent by ``wrk`` too, rotating among
pre-built bodies of randomly chosen devices, so the load generator (C, on the other
core) does no JSON work and the hub is what is measured; the hub's own
``lastseen_heartbeats_total`` must have grown by at least what ``wrk`` counted.

    .venv/bin/python -m bench.heartbeat_throughput                    # 10k and 1M, 3 runs
    .venv/bin/python -m bench.heartbeat_throughput --devices 10000 --runs 1 --seconds 3

Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
# Every request is formatted once, at start; each connection then takes the next one.
BATCH_LUA = """
local requests = {}
local i = 0
init = function(args)
  for body in io.lines(os.getenv("BODIES")) do
    requests[#requests + 1] = wrk.format("POST", "/v1/heartbeats",
      {["Content-Type"] = "application/json"}, body)
  end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"""
BATCH = 1000
#: Pre-built batch bodies ``wrk`` rotates among (each 1 000 random devices).
BODIES = 32
_HEARTBEATS = re.compile(rb'^lastseen_heartbeats_total\{source="heartbeat"\} ([0-9.e+]+)$', re.M)


def wrk_run(
    url: str, seconds: float, connections: int, script: Path | None, env: dict[str, str]
) -> tuple[float, int]:
    """Requests per second and requests completed, as wrk measured them (non-2xx
    responses are an error); ``env`` is for the script."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s"]
    if script is not None:
        command += ["-s", str(script)]
    env = {**os.environ, "SEED": str(time.time_ns() % 100000), **env}
    out = subprocess.run([*command, url], capture_output=True, text=True, env=env, check=True)
    if "Non-2xx" in out.stdout:
        raise RuntimeError(f"wrk saw errors:\n{out.stdout}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    done = re.search(r"(\d+) requests in", out.stdout)
    if rate is None or done is None:
        raise RuntimeError(out.stdout + out.stderr)
    return float(rate.group(1)), int(done.group(1))


def wrk(url: str, seconds: float, connections: int, script: Path | None, devices: int = 0) -> float:
    """Requests per second that wrk measured, ``devices`` given to the script."""
    return wrk_run(url, seconds, connections, script, {"DEVICES": str(devices)})[0]


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


def _sampled_bodies(devices: int, seed: int) -> list[bytes]:
    """``BODIES`` batches of ``BATCH`` distinct devices drawn from the whole fleet."""
    pick = random.Random(seed)
    size = min(BATCH, devices)
    return [
        orjson.dumps({"heartbeats": [{"device_id": f"dev-{i:07d}"} for i in ids]})
        for ids in (pick.sample(range(devices), size) for _ in range(BODIES))
    ]


def _heartbeats_counted(url: str) -> float:
    found = _HEARTBEATS.search(httpx.get(url + "/metrics").content)
    return float(found.group(1)) if found else 0.0


def batched(
    url: str, pid: int, devices: int, seconds: float, connections: int, workdir: Path
) -> tuple[float, float]:
    """Heartbeats per second through POST /v1/heartbeats, wrk posting pre-built bodies,
    and the hub process's CPU time per heartbeat (µs)."""
    bodies = workdir / "bodies.jsonl"
    bodies.write_bytes(b"\n".join(_sampled_bodies(devices, time.time_ns())) + b"\n")
    script = workdir / "batch.lua"
    script.write_text(BATCH_LUA)
    before = _heartbeats_counted(url)
    used = cpu_seconds(pid)
    rate, done = wrk_run(url, seconds, connections, script, {"BODIES": str(bodies)})
    used = cpu_seconds(pid) - used
    counted = _heartbeats_counted(url) - before
    if counted < done * min(BATCH, devices):
        raise RuntimeError(f"wrk completed {done} batches, the hub counted {counted} heartbeats")
    return rate * min(BATCH, devices), used / max(1.0, counted) * 1e6


@contextmanager
def ceiling_server() -> Iterator[tuple[str, int]]:
    """The bare route's URL and server pid, served by bench/ceiling.py while open."""
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
        yield f"http://127.0.0.1:{port}/ping", proc.pid
    finally:
        proc.terminate()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Slices:
    """Alternating one-second wrk runs against the hub and the ceiling: the rates, and
    the CPU time each server process used per request (on a shared machine the
    server's share of a core varies from second to second, its cost per request much
    less)."""

    hub: list[float] = field(default_factory=list)
    ceiling: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=lambda: {"hub": 0.0, "ceiling": 0.0})
    done: dict[str, int] = field(default_factory=lambda: {"hub": 0, "ceiling": 0})

    def ratios(self) -> list[float]:
        """Each hub slice against the mean of the ceiling slices just before and after."""
        tops = self.ceiling
        return [h / ((tops[i] + tops[i + 1]) / 2) for i, h in enumerate(self.hub)]

    def cpu_us(self, side: str) -> float:
        return self.cpu[side] / max(1, self.done[side]) * 1e6


def interleaved(
    hub: tuple[str, int],
    top: tuple[str, int],
    devices: int,
    seconds: float,
    connections: int,
    workdir: Path,
) -> Slices:
    """Hub and ceiling (url, pid) in alternating slices of a second, ceiling first and
    last (C H C ... H C): each hub slice is bracketed by two ceiling slices, so load
    that comes and goes on a shared machine lands on both sides of the ratio."""
    heartbeat = workdir / "heartbeat.lua"
    heartbeat.write_text(LUA)
    bare = workdir / "ceiling.lua"
    bare.write_text(CEILING_LUA)
    out = Slices()

    def one(side: str, url: str, pid: int, script: Path) -> float:
        used = cpu_seconds(pid)
        rate, done = wrk_run(url, 1, connections, script, {"DEVICES": str(devices)})
        out.cpu[side] += cpu_seconds(pid) - used
        out.done[side] += done
        return rate

    out.ceiling.append(one("ceiling", *top, bare))
    for _ in range(max(1, round(seconds))):
        out.hub.append(one("hub", *hub, heartbeat))
        out.ceiling.append(one("ceiling", *top, bare))
    return out


def run_once(
    devices: int,
    seconds: float,
    connections: int,
    batch_connections: int,
    ceiling_server: tuple[str, int],
    workdir: Path,
    hub_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    load = [os.getloadavg()[0]]
    hub = HubProcess(
        workdir / f"hub-{time.monotonic_ns()}",
        "--stale-after",
        "3600",
        "--offline-after",
        "7200",
        "--log-level",
        "warning",
        *hub_args,
    )
    hub.start()
    try:
        started = time.monotonic()
        with httpx.Client(base_url=hub.url, timeout=120) as client:
            for body in _bodies(devices, BATCH):
                client.post(
                    "/v1/heartbeats", content=body, headers={"content-type": "application/json"}
                ).raise_for_status()
        register_seconds = time.monotonic() - started
        assert hub.proc is not None
        slices = interleaved(
            (hub.url, hub.proc.pid), ceiling_server, devices, seconds, connections, workdir
        )
        batch, batch_cpu = batched(
            hub.url, hub.proc.pid, devices, seconds, batch_connections, workdir
        )
        rss = httpx.get(hub.url + "/healthz").json()["memory_rss"]
    finally:
        hub.stop()
    load.append(os.getloadavg()[0])
    hub_cpu, top_cpu = slices.cpu_us("hub"), slices.cpu_us("ceiling")
    return {
        "devices": devices,
        "register_seconds": round(register_seconds, 2),
        "heartbeat_rps": round(median(slices.hub)),
        "ceiling_rps": round(median(slices.ceiling)),
        "ratio": round(median(slices.ratios()), 3),
        "slices": {
            "heartbeat": [round(h) for h in slices.hub],
            "ceiling": [round(t) for t in slices.ceiling],
        },
        "heartbeat_cpu_us": round(hub_cpu, 1),
        "ceiling_cpu_us": round(top_cpu, 1),
        "cpu_ratio": round(top_cpu / hub_cpu, 3),
        "batched_hps": round(batch),
        "batched_cpu_us": round(batch_cpu, 2),
        "hub_rss_bytes": rss,
        "load_average_1m": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--batch-connections", type=int, default=4, help="wrk connections posting batches"
    )
    parser.add_argument(
        "--flush-interval",
        help="the hub's write-behind interval (default: the hub's); a diagnostic, to see "
        "what writing last_seen behind costs",
    )
    args = parser.parse_args()
    hub_args = () if args.flush_interval is None else ("--flush-interval", args.flush_interval)
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    runs = []
    with (
        tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp,
        ceiling_server() as top,
    ):
        for devices in args.devices:
            for _ in range(args.runs):
                result = run_once(
                    devices,
                    args.seconds,
                    args.connections,
                    args.batch_connections,
                    top,
                    Path(tmp),
                    hub_args,
                )
                print(result, flush=True)
                runs.append(result)
    summary = {}
    rows = []
    for devices in args.devices:
        mine = [r for r in runs if r["devices"] == devices]
        s = {
            k: median([r[k] for r in mine])
            for k in (
                "heartbeat_rps",
                "ceiling_rps",
                "ratio",
                "heartbeat_cpu_us",
                "ceiling_cpu_us",
                "cpu_ratio",
                "batched_hps",
                "batched_cpu_us",
            )
        }
        summary[str(devices)] = s
        rows.append(
            (
                f"{devices} devices (median of {len(mine)})",
                f"heartbeat {s['heartbeat_rps']:.0f} req/s  ceiling {s['ceiling_rps']:.0f} "
                f"req/s  ratio {s['ratio']:.2f}  CPU per request {s['heartbeat_cpu_us']:.0f} "
                f"vs {s['ceiling_cpu_us']:.0f} µs (ratio {s['cpu_ratio']:.2f})  "
                f"batched {s['batched_hps']:.0f} hb/s ({s['batched_cpu_us']:.2f} µs CPU each)",
            )
        )
    print_table("HTTP heartbeat throughput", rows)
    print(f"\nwrote {write_result('heartbeat_throughput', summary, runs)}")


if __name__ == "__main__":
    main()
