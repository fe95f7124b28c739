"""Restart recovery: how soon a restarted hub serves and fires the deadlines it missed.

Setup (once): a hub with long thresholds registers N devices through batched
heartbeats (every device ``online``, one transition each, none expiring however
long registering takes), is stopped with SIGTERM, and its data directory is kept.
Each run copies that directory, waits until every device's deadlines are in the
past, starts ``lastseen serve`` on it with ``--stale-after`` / ``--offline-after``
(short by default, so the wait is seconds, not minutes: the recovery does the same
work as after any outage longer than ``offline_after``) and measures from process
start:

* ``serve``: until ``GET /healthz`` answers 200 (polled every 50 ms by
  ``HubProcess.start``);
* ``recovered``: until the last overdue transition is committed and published,
  i.e. ``GET /v1/events`` returns seq ``before + 2N`` (every device goes
  ``online → stale → offline``; the hub publishes each commit right after it).

    .venv/bin/python -m bench.restart                               # 1 000 000 devices, 3 runs
    .venv/bin/python -m bench.restart --devices 20000 --runs 1      # quick
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, print_table, write_result
from bench.memory import batches, peak_rss, register
from lastseen.testing import HubProcess


def setup(devices: int, concurrency: int, data_dir: Path) -> dict[str, Any]:
    """Register ``devices`` online devices into ``data_dir``; stop the hub."""
    hub = HubProcess(
        data_dir, "--stale-after", "3600", "--offline-after", "7200", "--log-level", "warning"
    )
    hub.start()
    try:
        register_seconds = asyncio.run(register(hub.url, batches(0, devices), concurrency))
        seq = httpx.get(hub.url + "/healthz", timeout=30).json()["seq"]
    finally:
        stopping = time.monotonic()
        hub.stop(timeout=600)
    stop_seconds = time.monotonic() - stopping
    if seq != devices:
        raise RuntimeError(f"expected seq {devices} after registering, got {seq}")
    return {
        "register_seconds": round(register_seconds, 2),
        "stop_seconds": round(stop_seconds, 2),
        "last_beat": stopping,
        "seq": seq,
        "db_bytes": sum(f.stat().st_size for f in data_dir.iterdir() if f.is_file()),
    }


def _offline_count(url: str) -> int:
    text = httpx.get(url + "/metrics", timeout=30).text
    match = re.search(r'^lastseen_devices\{status="offline"\} (\S+)$', text, re.MULTILINE)
    return int(float(match.group(1))) if match else -1


def run_once(
    devices: int,
    seq_before: int,
    snapshot: Path,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    data_dir = workdir / f"run-{time.monotonic_ns()}"
    shutil.copytree(snapshot, data_dir)
    hub = HubProcess(
        data_dir,
        "--stale-after", str(args.stale_after), "--offline-after", str(args.offline_after),
        "--log-level", args.log_level,
    )  # fmt: skip
    expected = seq_before + 2 * devices
    started = time.monotonic()
    hub.start(timeout=args.timeout)
    serve = time.monotonic() - started
    try:
        with httpx.Client(base_url=hub.url, timeout=30) as client:
            while True:
                body = client.get("/v1/events", params={"after": expected - 1, "limit": 1}).json()
                if body["events"]:
                    recovered = time.monotonic() - started
                    break
                if time.monotonic() - started > args.timeout:
                    raise RuntimeError(
                        f"seq {expected} not published within {args.timeout} s "
                        f"(last committed: {body['last_seq']})"
                    )
                time.sleep(0.01)
            health = client.get("/healthz").json()
        offline = _offline_count(hub.url)
        assert hub.proc is not None
        peak = peak_rss(hub.proc.pid)
    finally:
        hub.stop(timeout=600)
    if health["seq"] != expected or offline != devices:
        raise RuntimeError(
            f"after recovery: seq {health['seq']} (expected {expected}), "
            f"{offline} offline (expected {devices})"
        )
    return {
        "devices": devices,
        "transitions": expected - seq_before,
        "serve_seconds": round(serve, 3),
        "recovered_seconds": round(recovered, 3),
        "rss_after_bytes": health["memory_rss"],
        "rss_peak_bytes": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent batch clients")
    parser.add_argument("--stale-after", type=float, default=5.0, help="of the restarted hub")
    parser.add_argument("--offline-after", type=float, default=10.0, help="of the restarted hub")
    parser.add_argument("--log-level", default="warning", help="of the restarted hub")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after (s)")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
        snapshot = Path(tmp) / "snapshot"
        prepared = setup(args.devices, args.concurrency, snapshot)
        print({k: v for k, v in prepared.items() if k != "last_beat"}, flush=True)
        for _ in range(args.runs):
            # Every device's offline deadline must be in the past at the restart.
            wait = prepared["last_beat"] + args.offline_after + 0.5 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            result = run_once(args.devices, prepared["seq"], snapshot, args, Path(tmp))
            print(result, flush=True)
            runs.append(result)
    summary: dict[str, Any] = {
        key: median([r[key] for r in runs if r[key] is not None])
        for key in ("serve_seconds", "recovered_seconds", "rss_after_bytes", "rss_peak_bytes")
    }
    summary["devices"] = args.devices
    summary["register_seconds"] = prepared["register_seconds"]
    summary["stop_seconds"] = prepared["stop_seconds"]
    summary["db_bytes"] = prepared["db_bytes"]
    print_table(
        f"restart recovery ({args.devices} devices, {2 * args.devices} overdue transitions, "
        f"median of {len(runs)})",
        [
            ("process start → /healthz answers", f"{summary['serve_seconds']:.2f} s"),
            ("process start → all overdue published", f"{summary['recovered_seconds']:.2f} s"),
            (
                "hub memory after recovery",
                f"{summary['rss_after_bytes'] / 2**20:.0f} MiB "
                f"(peak {summary['rss_peak_bytes'] / 2**20:.0f} MiB)",
            ),
            (
                "setup",
                f"registered in {prepared['register_seconds']:.1f} s, SIGTERM stop "
                f"{prepared['stop_seconds']:.1f} s, data {prepared['db_bytes'] / 2**20:.0f} MiB",
            ),
        ],
    )
    print(f"\nwrote {write_result('restart', summary, runs)}")


if __name__ == "__main__":
    main()
