"""Scale-out mode beyond throughput: push latency across instances, memory per tracked
device (in Redis and per instance) and restart recovery, with 1 and 2 instances.

Each run starts ``lastseen serve --redis`` instances sharing the machine's Redis (a
private key prefix, deleted afterwards) and one SQLite store, as ``bench.scaleout``.

* push: ``bench.push_latency``'s measurement (100 SSE + 100 WebSocket subscribers, a new
  device heartbeats every 20 ms; latency = received - sent). Heartbeats go to the first
  instance and the subscribers listen on the last: with 2 instances every transition
  crosses Redis's stream to reach another instance's subscribers.
* memory: ``--devices`` devices are registered (batched heartbeats, one attribute
  each). Redis: ``MEMORY USAGE`` (exact, ``SAMPLES 0``) summed over every key of the
  prefix before and after, split into per-device state (device and attribute hashes, the
  id and deadline sorted sets) and the event stream, each growth ÷ N; ``used_memory``
  growth is shown too, but that Redis is shared with other work. Instances: RSS growth
  from ``/healthz``.
* restart: with the N devices in Redis, the first instance is stopped (SIGTERM) and
  started again: seconds from the start to ``/healthz`` answering and to the first read
  of a device answered correctly; the other instance (with 2) serves throughout.

    .venv/bin/python -m bench.scaleout_fleet                         # 1 and 2 instances, 3 runs
    .venv/bin/python -m bench.scaleout_fleet --runs 1 --devices 5000 --samples 50   # quick

Needs a Redis on 127.0.0.1:6379 (``--redis`` to change).
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

import httpx
import redis

from bench.common import median, print_table, write_result
from bench.push_latency import measure
from bench.scaleout import _cleanup, instances
from lastseen.testing import HubProcess

#: No timeouts during a run: every transition measured is a heartbeat's.
_NO_TIMEOUTS = ("--stale-after", "3600", "--offline-after", "7200")


def push(hubs: list[HubProcess], subscribers: int, samples: int) -> dict[str, Any]:
    pids = [hub.proc.pid for hub in hubs if hub.proc is not None]
    result = measure(hubs[0].url, hubs[-1].url, pids, subscribers, samples, 0.02, 10)
    return {
        "sse_p50_ms": result["sse"]["p50_ms"],
        "sse_p99_ms": result["sse"]["p99_ms"],
        "ws_p50_ms": result["ws"]["p50_ms"],
        "ws_p99_ms": result["ws"]["p99_ms"],
        "sse_spread_p50_ms": result["sse"]["spread_p50_ms"],
        "ws_spread_p50_ms": result["ws"]["spread_p50_ms"],
        "missing": result["sse"]["missing"] + result["ws"]["missing"],
        "ack_p50_ms": result["ack_p50_ms"],
    }


def _register(hub: HubProcess, devices: int) -> float:
    started = time.monotonic()
    with httpx.Client(base_url=hub.url, timeout=60) as client:
        for start in range(0, devices, 1000):
            batch = [
                {"device_id": f"dev-{i:07d}", "attributes": {"fw": "1.4.2"}}
                for i in range(start, min(start + 1000, devices))
            ]
            client.post("/v1/heartbeats", json={"heartbeats": batch}).raise_for_status()
    return time.monotonic() - started


def _redis_bytes(client: redis.Redis, prefix: str) -> dict[str, int]:
    """Exact ``MEMORY USAGE`` of every key of the prefix: the stream apart, the rest."""
    keys = list(client.scan_iter(match="{" + prefix + "}*", count=5000))
    out = {"state": 0, "stream": 0, "keys": len(keys)}
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.memory_usage(key, samples=0)
        for key, used in zip(chunk, pipe.execute(), strict=True):
            kind = "stream" if key.endswith(b":events") else "state"
            out[kind] += int(used or 0)
    return out


def _rss(hub: HubProcess) -> int:
    return int(httpx.get(hub.url + "/healthz", timeout=10).json()["memory_rss"])


def memory(hubs: list[HubProcess], url: str, prefix: str, devices: int) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        time.sleep(1.0)  # let start-up settle before the baseline
        used_before = int(client.info("memory")["used_memory"])
        usage_before = _redis_bytes(client, prefix)
        rss_before = [_rss(hub) for hub in hubs]
        seconds = _register(hubs[0], devices)
        time.sleep(2.0)  # the outbox drains the registrations into the store
        used_after = int(client.info("memory")["used_memory"])
        rss_after = [_rss(hub) for hub in hubs]
        usage = _redis_bytes(client, prefix)
    finally:
        client.close()
    return {
        "register_per_s": round(devices / seconds),
        "redis_state_bytes_per_device": round(
            (usage["state"] - usage_before["state"]) / devices, 1
        ),
        "redis_stream_bytes_per_event": round(
            (usage["stream"] - usage_before["stream"]) / devices, 1
        ),
        "redis_used_memory_growth_per_device": round((used_after - used_before) / devices, 1),
        "instance_rss_growth_mib": [
            round((a - b) / 2**20, 1) for a, b in zip(rss_after, rss_before, strict=True)
        ],
        "instance_rss_mib": [round(a / 2**20, 1) for a in rss_after],
    }


def restart(hubs: list[HubProcess], devices: int) -> dict[str, float]:
    """Stop the first instance and start it again; the others keep serving."""
    hub = hubs[0]
    before = httpx.get(hub.url + "/healthz", timeout=10).json()["devices"]
    hub.stop()
    started = time.monotonic()
    hub.start(timeout=120)
    serving = time.monotonic() - started
    probe = f"dev-{devices - 1:07d}"
    with httpx.Client(base_url=hub.url, timeout=10) as client:
        while client.get(f"/v1/devices/{probe}").json().get("status") != "online":
            time.sleep(0.01)
        read = time.monotonic() - started
        count = client.get("/healthz").json()["devices"]
    if count != before:
        raise RuntimeError(f"the restarted instance counts {count} devices, expected {before}")
    return {"serve_s": round(serving, 3), "first_read_s": round(read, 3)}


def run_once(count: int, options: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        with instances(count, options.redis, prefix, *_NO_TIMEOUTS) as hubs:
            # Push first, on an empty fleet as in bench.push_latency (a WebSocket
            # subscriber's first message is a snapshot of every device).
            result: dict[str, Any] = push(hubs, options.subscribers, options.samples)
            if not options.push_only:
                result |= memory(hubs, options.redis, prefix, options.devices)
                result |= restart(hubs, options.devices)
    finally:
        _cleanup(options.redis, prefix)
    return {"instances": count, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--subscribers", type=int, default=100, help="per transport")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--instances", default="1,2")
    parser.add_argument("--push-only", action="store_true", help="only the push latency")
    options = parser.parse_args()
    runs: list[dict[str, Any]] = []
    for count in (int(n) for n in options.instances.split(",")):
        for run in range(options.runs):
            load = os.getloadavg()[0]
            result = {"run": run, "load_average": round(load, 2), **run_once(count, options)}
            print(result, flush=True)
            runs.append(result)
    keys = (
        "sse_p50_ms", "sse_p99_ms", "ws_p50_ms", "ws_p99_ms", "ack_p50_ms",
        "redis_state_bytes_per_device", "redis_stream_bytes_per_event",
        "redis_used_memory_growth_per_device", "serve_s", "first_read_s", "load_average",
    )  # fmt: skip
    summary: dict[str, Any] = {"devices": options.devices}
    rows = []
    for count in sorted({r["instances"] for r in runs}):
        mine = [r for r in runs if r["instances"] == count]
        s: dict[str, Any] = {k: median([r[k] for r in mine]) for k in keys if k in mine[0]}
        s["missing"] = sum(r["missing"] for r in mine)
        summary[f"instances_{count}"] = s
        rows.append(
            (
                f"{count} instance(s): push",
                f"SSE p50 {s['sse_p50_ms']} / p99 {s['sse_p99_ms']} ms, WS p50 "
                f"{s['ws_p50_ms']} / p99 {s['ws_p99_ms']} ms, missing {s['missing']}",
            )
        )
        if options.push_only:
            continue
        s["instance_rss_growth_mib"] = median(
            [sum(r["instance_rss_growth_mib"]) / count for r in mine]
        )
        rows += [
            (
                f"{count} instance(s): memory",
                f"Redis {s['redis_state_bytes_per_device']:.0f} B/device + stream "
                f"{s['redis_stream_bytes_per_event']:.0f} B/event; instance RSS +"
                f"{s['instance_rss_growth_mib']:.1f} MiB for {options.devices} devices",
            ),
            (
                f"{count} instance(s): restart",
                f"serving after {s['serve_s']:.2f} s, first read {s['first_read_s']:.2f} s "
                f"({options.devices} devices in Redis)",
            ),
        ]
    print_table(f"scale-out fleet (median of {options.runs}, load average stated)", rows)
    print(f"\nwrote {write_result('scaleout_fleet', summary, runs)}")


if __name__ == "__main__":
    main()
