"""A true burst: N devices whose deadlines are the same instant, in process.

The end-to-end ``timeout_lag`` burst can only make deadlines as close as registration
allows (seconds apart for 100 000 devices). Here a hub on a real SQLite store and a
manual clock registers N devices at one instant, then the clock jumps to their common
deadline and one sweep fires them all; the time until every transition has been
committed and delivered to one in-process subscriber is the burst's cost.

    .venv/bin/python -m bench.burst                       # 100 000 devices, 3 runs
    .venv/bin/python -m bench.burst --devices 5000 --runs 1
    .venv/bin/python -m bench.burst --runs 1 --pause 3   # then: py-spy record --pid PID
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import median, print_table, write_result
from lastseen.clock import ManualClock
from lastseen.hub.broadcast import TRANSITION, StreamFilter
from lastseen.hub.core import Hub
from lastseen.settings import load_settings
from lastseen.store import SQLiteStore

T0 = 1_800_000_000.0


async def _run(devices: int, workdir: Path, pause: float = 0.0) -> dict[str, Any]:
    clock = ManualClock(T0)
    settings = load_settings(
        {"stale_after": 10, "offline_after": 600, "subscriber_queue": devices * 2}, environ={}
    )
    hub = Hub(settings, SQLiteStore(workdir / f"burst-{time.monotonic_ns()}.db"), clock)
    await hub.start(timers=False)
    try:
        for start in range(0, devices, 1000):
            await hub.heartbeats(
                [(f"d{i:07d}", None, None) for i in range(start, min(start + 1000, devices))]
            )
        subscriber, _ = await hub.open_stream(StreamFilter(), None)
        received = 0
        done = asyncio.Event()

        async def drain() -> None:
            nonlocal received
            # As a stream sender does: wait for one message, then take what is queued.
            while received < devices:
                message = await subscriber.get()
                if message is None:
                    break
                received += message[0] == TRANSITION
                received += sum(m[0] == TRANSITION for m in subscriber.drain())
            done.set()

        task = asyncio.create_task(drain())
        if pause:
            # Time to attach a sampling profiler to the burst alone.
            print(f"pid {os.getpid()}: burst in {pause} s", flush=True)
            await asyncio.sleep(pause)
        clock.set(T0 + 10.0)
        started = time.perf_counter()
        cpu = time.process_time()
        await hub.sweep()
        swept = time.perf_counter() - started
        swept_cpu = time.process_time() - cpu
        await done.wait()
        delivered = time.perf_counter() - started
        delivered_cpu = time.process_time() - cpu
        await task
        return {
            "devices": devices,
            "received": received,
            "sweep_seconds": round(swept, 3),
            "delivered_seconds": round(delivered, 3),
            # CPU of the whole process (loop and SQLite threads): what a busy
            # machine inflates least.
            "sweep_cpu_seconds": round(swept_cpu, 3),
            "delivered_cpu_seconds": round(delivered_cpu, 3),
        }
    finally:
        await hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds to wait, pid printed, before each burst (py-spy record --pid PID)",
    )
    args = parser.parse_args()
    logging.disable(logging.INFO)  # as `--log-level warning`: no transition lines
    runs = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
        for _ in range(args.runs):
            result = asyncio.run(_run(args.devices, Path(tmp), args.pause))
            print(result, flush=True)
            runs.append(result)
    keys = ("sweep_seconds", "delivered_seconds", "sweep_cpu_seconds", "delivered_cpu_seconds")
    summary = {k: median([r[k] for r in runs]) for k in keys}
    summary["all_received"] = all(r["received"] == r["devices"] for r in runs)
    print_table(
        "true burst: every deadline at the same instant (in process)",
        [
            (f"{args.devices} devices (median of {len(runs)})",
             f"swept {summary['sweep_seconds']} s  committed and delivered "
             f"{summary['delivered_seconds']} s  all received: {summary['all_received']}"),
            ("CPU (process)", f"sweep {summary['sweep_cpu_seconds']} s  "
             f"to delivered {summary['delivered_cpu_seconds']} s"),
        ],
    )  # fmt: skip
    print(f"\nwrote {write_result('burst', summary, runs)}")


if __name__ == "__main__":
    main()
