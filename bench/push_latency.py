"""Push latency: heartbeat sent → transition received by every stream subscriber.

One hub process, ``--subscribers`` Server-Sent Events subscribers (httpx streaming)
in one load process and as many WebSocket subscribers (``websockets``) in another,
all on real loopback connections. After a short warm-up the coordinator heartbeats
a new device id every ``--interval`` seconds: each sample is one ``unknown →
online`` transition that every subscriber must receive. Latency is the
subscriber's receive time minus the coordinator's send time (taken just before the
request is written); every process reads the same ``CLOCK_MONOTONIC``.

Besides p50/p99/max over every (sample, subscriber) pair, each transport reports the
median *fan-out spread* (last subscriber - first subscriber of a sample: the cost of
writing and reading N sockets one after another, on the hub and in the load
process) and ``ack``, the heartbeat's own round trip (the hub publishes a transition
right after its commit, before it answers). The load processes share the machine's
cores with the hub, so every number includes their scheduling too.

    .venv/bin/python -m bench.push_latency                          # 100 + 100, 200 samples, 3 runs
    .venv/bin/python -m bench.push_latency --samples 100 --runs 1   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import queue
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop
import websockets

from bench.common import median, percentile, print_table, write_result
from lastseen.testing import HubProcess

TRANSPORTS = ("sse", "ws")
#: The device id whose transition tells every subscriber the run is over.
END = "push-end"
_TICKS = os.sysconf("SC_CLK_TCK")

#: One subscriber's receive times, by device id.
Received = dict[str, float]


# ---------------------------------------------------------------- load processes


async def _sse(url: str, client: httpx.AsyncClient, connected: Callable[[], None]) -> Received:
    received: Received = {}
    async with client.stream("GET", url + "/v1/stream") as response:
        response.raise_for_status()
        buffer = b""
        first = True
        async for chunk in response.aiter_raw():
            now = time.monotonic()
            if first:
                first = False
                connected()
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                if not frame.startswith(b"event: transition"):
                    continue  # the greeting, seen updates, keep-alives
                event = orjson.loads(frame[frame.index(b"data: ") + 6 :])
                received[event["device_id"]] = now
                if event["device_id"] == END:
                    return received
    return received


async def _ws(url: str, connected: Callable[[], None]) -> Received:
    received: Received = {}
    ws_url = url.replace("http://", "ws://", 1) + "/v1/ws"
    async with websockets.connect(ws_url, max_size=None, max_queue=None) as ws:
        await ws.recv()  # the snapshot: from here on this subscriber is live
        connected()
        while True:
            raw = await ws.recv()
            now = time.monotonic()
            message = orjson.loads(raw)
            if message.get("type") != "transition":
                continue
            received[message["device_id"]] = now
            if message["device_id"] == END:
                return received


async def _listen_all(
    transport: str, url: str, count: int, ready: EventType, timeout: float
) -> list[Received]:
    remaining = count

    def connected() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            ready.set()

    async with asyncio.timeout(timeout):
        if transport == "sse":
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
            async with httpx.AsyncClient(limits=limits, timeout=None) as client:
                tasks: list[Awaitable[Received]] = [
                    _sse(url, client, connected) for _ in range(count)
                ]
                return list(await asyncio.gather(*tasks))
        return list(await asyncio.gather(*(_ws(url, connected) for _ in range(count))))


def _listen(
    transport: str,
    url: str,
    count: int,
    ready: EventType,
    results: multiprocessing.Queue[tuple[str, Any]],
    timeout: float,
) -> None:
    """Entry point of one load process: ``count`` subscribers of one transport."""
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            found = runner.run(_listen_all(transport, url, count, ready, timeout))
        results.put((transport, found))
    except BaseException as exc:
        results.put((transport, f"{type(exc).__name__}: {exc}"))
        raise


# ---------------------------------------------------------------- coordinator


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _subscribers(url: str) -> int:
    text = httpx.get(url + "/metrics").text
    match = re.search(r"^lastseen_stream_subscribers (\S+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def _wait_ready(
    worker: BaseProcess,
    ready: EventType,
    results: multiprocessing.Queue[tuple[str, Any]],
    timeout: float,
) -> None:
    """Until every subscriber of ``worker`` is connected; its error if it died first."""
    deadline = time.monotonic() + timeout
    while not ready.wait(0.1):
        if not worker.is_alive():
            try:
                _, error = results.get(timeout=1)
            except queue.Empty:
                error = f"exit code {worker.exitcode}"
            raise RuntimeError(f"{worker.name} failed: {error}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{worker.name}: subscribers did not connect in {timeout:.0f} s")


def _beat(client: httpx.Client, device_id: str) -> tuple[float, float]:
    """Send one heartbeat; (send time, round trip)."""
    sent = time.monotonic()
    client.post(f"/v1/devices/{device_id}/heartbeat").raise_for_status()
    return sent, time.monotonic() - sent


def _transport_stats(
    received: list[Received], sent: dict[str, float], samples: list[str]
) -> dict[str, Any]:
    latencies: list[float] = []
    spreads: list[float] = []
    missing = 0
    for device_id in samples:
        times = [r[device_id] for r in received if device_id in r]
        missing += len(received) - len(times)
        latencies += [t - sent[device_id] for t in times]
        if times:
            spreads.append(max(times) - min(times))
    return {
        "subscribers": len(received),
        "deliveries": len(latencies),
        "missing": missing,
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2) if latencies else None,
        "spread_p50_ms": round(median(spreads) * 1000, 2),
    }


def run_once(
    subscribers: int, samples: int, interval: float, warmup: int, workdir: Path
) -> dict[str, Any]:
    hub = HubProcess(
        workdir / f"hub-{time.monotonic_ns()}",
        "--stale-after", "3600", "--offline-after", "7200", "--log-level", "warning",
    )  # fmt: skip
    hub.start()
    try:
        assert hub.proc is not None
        return measure(hub.url, hub.url, [hub.proc.pid], subscribers, samples, interval, warmup)
    finally:
        hub.stop()


def measure(
    beat_url: str,
    listen_url: str,
    hub_pids: list[int],
    subscribers: int,
    samples: int,
    interval: float,
    warmup: int,
) -> dict[str, Any]:
    """Heartbeats sent to ``beat_url``, subscribers on ``listen_url`` (another instance
    of a scale-out hub, or the same hub); ``hub_pids`` are the hub processes whose CPU
    is reported as the hub's."""
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[str, Any]] = ctx.Queue()
    budget = 60 + (samples + warmup) * interval * 3
    workers = []
    try:
        for transport in TRANSPORTS:
            ready = ctx.Event()
            worker = ctx.Process(
                target=_listen,
                args=(transport, listen_url, subscribers, ready, results, budget),
                name=f"push-latency-{transport}",
            )
            worker.start()
            workers.append((worker, ready))
        for worker, ready in workers:
            _wait_ready(worker, ready, results, 30.0)
        expected = subscribers * len(TRANSPORTS)
        if (connected := _subscribers(listen_url)) != expected:
            raise RuntimeError(f"hub counts {connected} subscribers, expected {expected}")

        pids = {f"hub-{i}": pid for i, pid in enumerate(hub_pids)}
        pids.update({w.name: w.pid for w, _ in workers if w.pid})
        cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        sent: dict[str, float] = {}
        acks: list[float] = []
        ids = [f"push-warm-{i}" for i in range(warmup)] + [f"push-{i}" for i in range(samples)]
        with httpx.Client(base_url=beat_url, timeout=10) as client:
            started = time.monotonic()
            for index, device_id in enumerate(ids):
                wait = started + index * interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                sent[device_id], ack = _beat(client, device_id)
                if index >= warmup:
                    acks.append(ack)
            elapsed = time.monotonic() - started
            cpu = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            time.sleep(interval)
            _beat(client, END)

        by_transport: dict[str, list[Received]] = {}
        for _ in TRANSPORTS:
            try:
                transport, found = results.get(timeout=budget)
            except queue.Empty:
                raise RuntimeError("a load process sent no results") from None
            if isinstance(found, str):
                raise RuntimeError(f"{transport} load process failed: {found}")
            by_transport[transport] = found
    finally:
        for worker, _ in workers:
            worker.join(5)
            if worker.is_alive():
                worker.terminate()
                worker.join()

    measured = ids[warmup:]
    return {
        "subscribers_per_transport": subscribers,
        "samples": samples,
        "interval_ms": interval * 1000,
        **{t: _transport_stats(by_transport[t], sent, measured) for t in TRANSPORTS},
        "ack_p50_ms": round(percentile(acks, 0.5) * 1000, 2),
        "ack_p99_ms": round(percentile(acks, 0.99) * 1000, 2),
        "hub_cpu_percent": round(
            100 * sum(cpu.pop(f"hub-{i}") for i in range(len(hub_pids))) / elapsed, 1
        ),
        "load_cpu_percent": {name: round(100 * c / elapsed, 1) for name, c in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100, help="per transport")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between samples")
    parser.add_argument("--warmup", type=int, default=10, help="samples sent first, not counted")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
        for _ in range(args.runs):
            result = run_once(args.subscribers, args.samples, args.interval, args.warmup, Path(tmp))
            print(result, flush=True)
            runs.append(result)
    summary: dict[str, Any] = {}
    rows = []
    for transport in TRANSPORTS:
        s = {
            key: median([r[transport][key] for r in runs])
            for key in ("p50_ms", "p99_ms", "max_ms", "spread_p50_ms")
        }
        s["missing"] = sum(r[transport]["missing"] for r in runs)
        summary[transport] = s
        rows.append(
            (
                f"{transport} ({args.subscribers} subscribers, median of {len(runs)})",
                f"p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms  max {s['max_ms']} ms  "
                f"fan-out spread {s['spread_p50_ms']} ms  missing {s['missing']}",
            )
        )
    summary["ack_p50_ms"] = median([r["ack_p50_ms"] for r in runs])
    summary["ack_p99_ms"] = median([r["ack_p99_ms"] for r in runs])
    summary["hub_cpu_percent"] = median([r["hub_cpu_percent"] for r in runs])
    summary["load_cpu_percent"] = median([sum(r["load_cpu_percent"].values()) for r in runs])
    rows.append(
        (
            "heartbeat round trip",
            f"p50 {summary['ack_p50_ms']} ms  p99 {summary['ack_p99_ms']} ms  "
            f"(CPU: hub {summary['hub_cpu_percent']} %, load processes "
            f"{summary['load_cpu_percent']} %)",
        )
    )
    print_table(
        f"push latency: heartbeat sent → transition received ({args.samples} samples "
        f"every {args.interval * 1000:.0f} ms)",
        rows,
    )
    print(f"\nwrote {write_result('push_latency', summary, runs)}")


if __name__ == "__main__":
    main()
