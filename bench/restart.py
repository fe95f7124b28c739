"""Restart recovery: how soon a restarted hub serves and fires the deadlines it missed.

Setup (once): a hub with long thresholds registers N devices through batched
heartbeats (every device ``online``, one transition each, none expiring however
long registering takes), is stopped with SIGTERM, and its data directory is kept.
``--build`` writes the same rows and events with the store directly instead (what
the hub commits for a first heartbeat, decided by the same engine), in a fraction of
the time; ``--data DIR`` keeps that directory and reuses it on the next run. Each run
copies that directory, waits until every device's deadlines are in the
past, starts ``lastseen serve`` on it with ``--stale-after`` / ``--offline-after``
(short by default, so the wait is seconds, not minutes: the recovery does the same
work as after any outage longer than ``offline_after``) and measures from process
start:

* ``serve``: until ``GET /healthz`` answers 200 (polled every 50 ms by
  ``HubProcess.start``);
* ``first``: until the first overdue transition is published (``GET /v1/events``
  returns seq ``before + 1``);
* ``recovered``: until the last overdue transition is committed and published,
  i.e. ``GET /v1/events`` returns seq ``before + 2N`` (every device goes
  ``online → stale → offline``; the hub publishes each commit right after it);
* ``/healthz`` latency while the backlog drains (one request every 50 ms).

    .venv/bin/python -m bench.restart                               # 1 000 000 devices, 3 runs
    .venv/bin/python -m bench.restart --devices 20000 --runs 1      # quick
    .venv/bin/python -m bench.restart --alert-rule 3600             # with an alert rule
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import median, percentile, print_table, write_result
from bench.memory import batches, peak_rss, register
from lastseen.notify.sqlite import SQLiteNotifyStore
from lastseen.presence import Observation, Profile, Source, new_device, observe
from lastseen.store import Batch, DeviceRecord, EventRecord
from lastseen.store.sqlite import SQLiteStore
from lastseen.testing import HubProcess

#: Devices written per transaction by ``build``.
_BUILD_BATCH = 50_000


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


def build(devices: int, data_dir: Path) -> dict[str, Any]:
    """``setup`` without the HTTP round trips: the store is given, for each device, the
    row and the ``unknown → online`` event a hub commits for its first heartbeat."""

    async def write() -> int:
        store = SQLiteStore(data_dir / "lastseen.db")
        await store.open()
        try:
            seq = await store.last_seq()
            profile = Profile()
            for first in range(0, devices, _BUILD_BATCH):
                now = time.time()
                upserts, events = [], []
                for i in range(first, min(first + _BUILD_BATCH, devices)):
                    device_id = f"dev-{i:07d}"
                    step = observe(new_device(now), Observation(Source.HEARTBEAT), profile, now)
                    upserts.append(
                        DeviceRecord(device_id, profile.name, step.state, {}, {}, {}, now, now)
                    )
                    for transition in step.transitions:
                        seq += 1
                        events.append(EventRecord(seq, device_id, transition))
                await store.apply(Batch(upserts=upserts, events=events))
        finally:
            await store.close()
        # The notifier of a hub that registered them has seen those events: its cursor
        # is past them (else a restart would first feed it every one from the store).
        notify = SQLiteNotifyStore(data_dir / "lastseen.notify.db")
        await notify.open()
        try:
            await notify.enqueue([], seq)
        finally:
            await notify.close()
        return seq

    data_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    seq = asyncio.run(write())
    return {
        "build_seconds": round(time.monotonic() - started, 2),
        "last_beat": time.monotonic(),
        "seq": seq,
        "db_bytes": sum(f.stat().st_size for f in data_dir.iterdir() if f.is_file()),
    }


def prepare(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """The data directory every run copies: reused when ``--data`` holds one already."""
    marker = data_dir / "bench-restart.json"
    if marker.exists():
        prepared: dict[str, Any] = json.loads(marker.read_text())
        if prepared["devices"] != args.devices:
            raise SystemExit(f"{data_dir} holds {prepared['devices']} devices, not {args.devices}")
        # Written long enough ago: every deadline of the restarted hub has passed.
        prepared["last_beat"] = 0.0
        prepared["reused"] = True
        return prepared
    if args.build:
        prepared = build(args.devices, data_dir)
    else:
        prepared = setup(args.devices, args.concurrency, data_dir)
    prepared["devices"] = args.devices
    if args.data is not None:
        marker.write_text(json.dumps({k: v for k, v in prepared.items() if k != "last_beat"}))
    return prepared


def _setup_line(prepared: dict[str, Any]) -> str:
    if prepared.get("reused"):
        how = "reused"
    elif "build_seconds" in prepared:
        how = f"written with the store in {prepared['build_seconds']:.1f} s"
    else:
        how = (
            f"registered in {prepared['register_seconds']:.1f} s, SIGTERM stop "
            f"{prepared['stop_seconds']:.1f} s"
        )
    return f"{how}, data {prepared['db_bytes'] / 2**20:.0f} MiB"


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
    extra: list[str] = []
    if args.alert_rule is not None:
        # An offline_for rule matching every device: the notifier seeds its engine at
        # start and then follows every overdue transition of the drain.
        config = workdir / f"alerts-{time.monotonic_ns()}.toml"
        config.write_text(f'[alerts.gone]\nkind = "offline_for"\nduration = {args.alert_rule}\n')
        extra = ["--config", str(config)]
    hub = HubProcess(
        data_dir,
        "--stale-after", str(args.stale_after), "--offline-after", str(args.offline_after),
        "--log-level", args.log_level, *extra,
    )  # fmt: skip
    expected = seq_before + 2 * devices
    started = time.monotonic()
    hub.start(timeout=args.timeout)
    serve = time.monotonic() - started
    first: float | None = None
    latencies: list[float] = []
    try:
        with httpx.Client(base_url=hub.url, timeout=30) as client:
            next_health = 0.0
            while True:
                now = time.monotonic()
                if now >= next_health:
                    # /healthz while the backlog drains: is the hub still responsive?
                    client.get("/healthz").raise_for_status()
                    latencies.append(time.monotonic() - now)
                    next_health = now + 0.05
                if first is None:
                    probe = {"after": seq_before, "limit": 1}
                    if client.get("/v1/events", params=probe).json()["events"]:
                        first = time.monotonic() - started
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
        "first_seconds": None if first is None else round(first, 3),
        "recovered_seconds": round(recovered, 3),
        "healthz_p50_ms": round(1000 * percentile(latencies, 0.5), 1),
        "healthz_p99_ms": round(1000 * percentile(latencies, 0.99), 1),
        "healthz_max_ms": round(1000 * max(latencies), 1),
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
    parser.add_argument(
        "--build", action="store_true", help="write the devices with the store, not over HTTP"
    )
    parser.add_argument(
        "--data", type=Path, help="keep the prepared data directory here; reuse it if present"
    )
    parser.add_argument(
        "--alert-rule",
        type=float,
        metavar="SECONDS",
        help="restart with an offline_for alert rule of this duration over every device",
    )
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
        snapshot = args.data or Path(tmp) / "snapshot"
        prepared = prepare(args, snapshot)
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
        for key in (
            "serve_seconds",
            "first_seconds",
            "recovered_seconds",
            "healthz_p50_ms",
            "healthz_p99_ms",
            "healthz_max_ms",
            "rss_after_bytes",
            "rss_peak_bytes",
        )
    }
    summary["devices"] = args.devices
    summary["alert_rule_seconds"] = args.alert_rule
    summary.update({k: v for k, v in prepared.items() if k != "last_beat"})
    print_table(
        f"restart recovery ({args.devices} devices, {2 * args.devices} overdue transitions, "
        f"median of {len(runs)})",
        [
            ("process start → /healthz answers", f"{summary['serve_seconds']:.2f} s"),
            ("process start → first overdue published", f"{summary['first_seconds']:.2f} s"),
            ("process start → all overdue published", f"{summary['recovered_seconds']:.2f} s"),
            (
                "/healthz while the backlog drains",
                f"p50 {summary['healthz_p50_ms']:.1f} ms, p99 {summary['healthz_p99_ms']:.1f} ms, "
                f"max {summary['healthz_max_ms']:.1f} ms",
            ),
            (
                "hub memory after recovery",
                f"{summary['rss_after_bytes'] / 2**20:.0f} MiB "
                f"(peak {summary['rss_peak_bytes'] / 2**20:.0f} MiB)",
            ),
            ("setup", _setup_line(prepared)),
            (
                "alert rules",
                "none" if args.alert_rule is None else f"offline_for {args.alert_rule:g} s",
            ),
        ],
    )
    print(f"\nwrote {write_result('restart', summary, runs)}")


if __name__ == "__main__":
    main()
