"""A restart's start-up alone, in process: ``Hub.start`` on a copy of a data directory.

What ``bench.restart`` measures from outside, without the process start, the HTTP
server or the overdue backlog: the store's device rows read and the columns filled,
every deadline scheduled (``Hub.start(timers=False)``; nothing is swept). Each run is
a fresh child process on a fresh copy, so the peak RSS is the start-up's own.

    .venv/bin/python -m bench.restart --devices 1000000 --runs 0 --build --data /tmp/restart-1m
    .venv/bin/python -m bench.restart_load /tmp/restart-1m --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import median, print_table, write_result


def _child(data_dir: Path) -> dict[str, Any]:
    from lastseen.clock import ManualClock
    from lastseen.hub.core import Hub
    from lastseen.presence import Profile, ProfileRegistry
    from lastseen.settings import Settings
    from lastseen.store.sqlite import SQLiteStore

    async def start() -> dict[str, Any]:
        # bench.restart's thresholds: every device is overdue.
        profiles = ProfileRegistry([Profile(stale_after=5.0, offline_after=10.0)])
        settings = Settings(profiles=profiles)
        hub = Hub(settings, SQLiteStore(data_dir / "lastseen.db"), ManualClock(time.time()))
        wall, cpu = time.perf_counter(), time.process_time()
        await hub.start(timers=False)
        result = {
            "start_seconds": round(time.perf_counter() - wall, 3),
            "start_cpu_seconds": round(time.process_time() - cpu, 3),
            "devices": len(hub.table),
            "overdue": sum(
                1 for n in range(len(hub.table)) if hub.table.scheduled[n] <= hub.clock.now()
            ),
        }
        await hub.stop()
        return result

    result = asyncio.run(start())
    # ru_maxrss is in KiB on Linux.
    result["rss_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="a data directory (never changed)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.data_dir)))
        return
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
            copy = Path(tmp) / "data"
            shutil.copytree(args.data_dir, copy)
            out = subprocess.run(
                [sys.executable, "-m", "bench.restart_load", str(copy), "--child"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        result = json.loads(out.splitlines()[-1])
        print(result, flush=True)
        runs.append(result)
    summary = {
        key: median([r[key] for r in runs])
        for key in ("start_seconds", "start_cpu_seconds", "rss_peak_bytes")
    }
    summary["devices"] = runs[0]["devices"]
    print_table(
        f"Hub.start in process ({summary['devices']} devices, median of {len(runs)})",
        [
            ("Hub.start, wall", f"{summary['start_seconds']:.2f} s"),
            ("Hub.start, CPU", f"{summary['start_cpu_seconds']:.2f} s"),
            ("peak RSS", f"{summary['rss_peak_bytes'] / 2**20:.0f} MiB"),
        ],
    )
    print(f"\nwrote {write_result('restart_load', summary, runs)}")


if __name__ == "__main__":
    main()
