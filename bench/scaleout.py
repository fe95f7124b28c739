"""Scale-out mode: heartbeat throughput and timeout detection lag with 1 and 2 instances,
and the heartbeat script as EVALSHA against the same code as a Redis Function.

Each configuration starts ``lastseen serve --redis`` instances on free ports sharing the
machine's Redis (a private key prefix, deleted afterwards) and one SQLite store, then

* throughput: every device is made online (batched), then ``wrk`` drives single
  heartbeats of random online devices against every instance at once (the hot path:
  one script call, no store write); the figure is the sum over instances;
* detection lag: ``--lag-devices`` devices beat once; an SSE subscriber on the first
  instance records, for every ``stale`` transition, arrival time minus its deadline
  (the ``at`` stamped by whichever instance's sweeper fired it).

    .venv/bin/python -m bench.scaleout                       # 1 and 2 instances, 3 runs
    .venv/bin/python -m bench.scaleout --runs 1 --seconds 3 --devices 2000   # quick

Needs ``wrk`` and a Redis on 127.0.0.1:6379 (``--redis`` to change).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.common import median, percentile, print_table, write_result
from bench.heartbeat_throughput import LUA, wrk
from lastseen.scaleout import lua
from lastseen.scaleout.keys import Keys
from lastseen.testing import HubProcess
from lastseen.timefmt import parse_rfc3339


@contextlib.contextmanager
def instances(count: int, url: str, prefix: str, *args: str) -> Iterator[list[HubProcess]]:
    with tempfile.TemporaryDirectory(prefix="lastseen-scaleout-") as tmp:
        data = Path(tmp) / "data"
        hubs = [
            HubProcess(
                data, "--redis", url, "--redis-prefix", prefix, "--log-level", "warning", *args
            )
            for _ in range(count)
        ]
        for i, hub in enumerate(hubs):
            hub.log_path = Path(tmp) / f"instance-{i}.log"
            hub.start()
        try:
            yield hubs
        finally:
            for hub in hubs:
                hub.stop()


def _register(hub: HubProcess, devices: int) -> None:
    with httpx.Client(base_url=hub.url, timeout=60) as client:
        for start in range(0, devices, 1000):
            batch = [
                {"device_id": f"dev-{i:07d}"} for i in range(start, min(start + 1000, devices))
            ]
            client.post("/v1/heartbeats", json={"heartbeats": batch}).raise_for_status()


def throughput(hubs: list[HubProcess], devices: int, seconds: float) -> float:
    _register(hubs[0], devices)
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(LUA)
    results: list[float] = []

    def run(hub: HubProcess) -> None:
        results.append(wrk(hub.url, seconds, 32, script, devices))

    threads = [threading.Thread(target=run, args=(hub,)) for hub in hubs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    script.unlink()
    return sum(results)


def detection_lag(hubs: list[HubProcess], devices: int) -> dict[str, float]:
    lags: list[float] = []
    done = threading.Event()
    ready = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(5.0, read=30.0)) as client,
            client.stream("GET", hubs[0].url + "/v1/stream") as answer,
        ):
            ready.set()
            for line in answer.iter_lines():
                if not line.startswith("data: "):
                    continue
                body = json.loads(line[6:])
                if body.get("to") == "stale" and body["device_id"].startswith("lag-"):
                    lags.append(time.time() - parse_rfc3339(body["at"]))
                    if len(lags) == devices:
                        done.set()
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(5)
    batch = [{"device_id": f"lag-{i:06d}"} for i in range(devices)]
    with httpx.Client(base_url=hubs[-1].url, timeout=60) as client:
        for start in range(0, devices, 1000):
            body = {"heartbeats": batch[start : start + 1000]}
            client.post("/v1/heartbeats", json=body).raise_for_status()
    done.wait(30)
    if not lags:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {
        "p50_ms": percentile(lags, 0.5) * 1000,
        "p99_ms": percentile(lags, 0.99) * 1000,
        "max_ms": max(lags) * 1000,
        "received": float(len(lags)),
    }


def _cleanup(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match="{" + prefix + "}*", count=1000):
            client.delete(key)
    finally:
        client.close()


def script_kinds(url: str, calls: int) -> dict[str, float]:
    """Sequential heartbeats of one online device: EVALSHA vs FCALL of the same code."""
    client = redis.Redis.from_url(url, decode_responses=True)
    prefix = f"bench-fn-{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    spec = "default|40.0|300.0|6|600.0"
    args = ["dev", "heartbeat", "", "", "1", "1", "", spec, 1000, 256, ""]
    body = lua.OBSERVE
    library = (
        "#!lua name=lsbench\n"
        "redis.register_function('observe', function(KEYS, ARGV)\n" + body + "\nend)\n"
    )
    out: dict[str, float] = {}
    try:
        client.function_load(library, replace=True)
        script = client.register_script(body)
        k = keys.observe_keys("dev")
        script(keys=k, args=args)
        for name, call in (
            ("evalsha", lambda: script(keys=k, args=args)),
            ("fcall", lambda: client.fcall("observe", len(k), *k, *args)),
        ):
            started = time.perf_counter()
            for _ in range(calls):
                call()
            out[f"{name}_us"] = (time.perf_counter() - started) / calls * 1e6
    finally:
        with contextlib.suppress(redis.RedisError):
            client.function_delete("lsbench")
        client.close()
        _cleanup(url, prefix)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--lag-devices", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--instances", default="1,2")
    options = parser.parse_args()
    runs: list[dict[str, Any]] = []
    for count in (int(n) for n in options.instances.split(",")):
        for run in range(options.runs):
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            try:
                with instances(
                    count, options.redis, prefix, "--stale-after", "2", "--offline-after", "600"
                ) as hubs:
                    rate = throughput(hubs, options.devices, options.seconds)
                    lag = detection_lag(hubs, options.lag_devices)
            finally:
                _cleanup(options.redis, prefix)
            runs.append({"instances": count, "run": run, "heartbeats_per_s": rate, **lag})
            print(f"instances={count} run={run} heartbeats/s={rate:.0f} lag={lag}", flush=True)
    kinds = script_kinds(options.redis, 5000)
    summary: dict[str, Any] = {"scripts": kinds}
    rows = []
    for count in sorted({r["instances"] for r in runs}):
        mine = [r for r in runs if r["instances"] == count]
        entry = {
            "heartbeats_per_s": median([r["heartbeats_per_s"] for r in mine]),
            "lag_p50_ms": median([r["p50_ms"] for r in mine]),
            "lag_p99_ms": median([r["p99_ms"] for r in mine]),
            "lag_max_ms": max(r["max_ms"] for r in mine),
        }
        summary[f"instances_{count}"] = entry
        rows.append(
            (
                f"{count} instance(s)",
                f"{entry['heartbeats_per_s']:.0f} heartbeats/s, lag p50 "
                f"{entry['lag_p50_ms']:.0f} ms p99 {entry['lag_p99_ms']:.0f} ms "
                f"max {entry['lag_max_ms']:.0f} ms",
            )
        )
    rows.append(
        (
            "script call",
            f"EVALSHA {kinds['evalsha_us']:.0f} µs, FCALL {kinds['fcall_us']:.0f} µs "
            "(sequential round trips)",
        )
    )
    print_table("scale-out", rows)
    write_result("scaleout", summary, runs)


if __name__ == "__main__":
    main()
