"""Memory per tracked device: the hub's RSS growth ÷ the number of devices.

A fresh hub is started and left to settle; its resident memory (``memory_rss`` from
``/healthz``) is the baseline. Then N devices register through batched heartbeats
(``POST /v1/heartbeats``, 1000 per request, several concurrent clients): first
half of them, a settle and a reading, then the rest, a settle and the final
reading. "Settle" is an idle pause long enough for the write-behind flush and the
coalesced "seen" tick to finish, so no request or commit buffer is counted.

* ``bytes_per_device`` = (final - baseline) / N: what the target is about; it
  includes fixed costs that only appear under load (the SQLite writer's page
  cache, up to 64 MiB; the in-memory replay ring of recent events);
* ``marginal_bytes_per_device`` = (final - half) / (N - N/2): the slope, with most of
  those fixed costs already paid at the half-way reading.

The peak (``VmHWM`` of the hub process) and how long registering took are reported too.

    .venv/bin/python -m bench.memory                              # 1 000 000 devices, 3 runs
    .venv/bin/python -m bench.memory --devices 20000 --runs 1     # quick
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import median, print_table, write_result
from lastseen.testing import HubProcess

BATCH = 1000


def batches(first: int, last: int, prefix: str = "dev") -> list[bytes]:
    """Batched-heartbeat bodies for devices ``first`` .. ``last - 1``."""
    return [
        orjson.dumps(
            {
                "heartbeats": [
                    {"device_id": f"{prefix}-{i:07d}"} for i in range(s, min(s + BATCH, last))
                ]
            }
        )
        for s in range(first, last, BATCH)
    ]


async def register(url: str, bodies: list[bytes], concurrency: int) -> float:
    """Post every body with ``concurrency`` keep-alive clients; seconds taken."""

    async def worker(offset: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            for body in bodies[offset::concurrency]:
                response = await client.post(
                    "/v1/heartbeats", content=body, headers={"content-type": "application/json"}
                )
                response.raise_for_status()
                if response.json()["rejected"]:
                    raise RuntimeError(f"the hub rejected heartbeats: {response.text[:500]}")

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return time.monotonic() - started


def health(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(url + "/healthz", timeout=30).json()
    return body


def peak_rss(pid: int) -> int | None:
    """The process's peak resident memory (``VmHWM``), if /proc says."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_once(devices: int, concurrency: int, settle: float, workdir: Path) -> dict[str, Any]:
    hub = HubProcess(
        workdir / f"hub-{time.monotonic_ns()}",
        "--stale-after", "3600", "--offline-after", "7200", "--log-level", "warning",
    )  # fmt: skip
    hub.start()
    try:
        assert hub.proc is not None
        half = devices // 2
        time.sleep(settle)
        base = health(hub.url)["memory_rss"]
        first = asyncio.run(register(hub.url, batches(0, half), concurrency))
        time.sleep(settle)
        middle = health(hub.url)["memory_rss"]
        second = asyncio.run(register(hub.url, batches(half, devices), concurrency))
        time.sleep(settle)
        final = health(hub.url)
        peak = peak_rss(hub.proc.pid)
    finally:
        hub.stop()
    if final["devices"] != devices:
        raise RuntimeError(f"the hub tracks {final['devices']} devices, expected {devices}")
    register_seconds = first + second
    return {
        "devices": devices,
        "rss_base_bytes": base,
        "rss_half_bytes": middle,
        "rss_final_bytes": final["memory_rss"],
        "rss_peak_bytes": peak,
        "db_size_bytes": final["db_size"],
        "bytes_per_device": round((final["memory_rss"] - base) / devices, 1),
        "marginal_bytes_per_device": round(
            (final["memory_rss"] - middle) / max(1, devices - half), 1
        ),
        "register_seconds": round(register_seconds, 2),
        "register_per_second": round(devices / register_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent batch clients")
    parser.add_argument("--settle", type=float, default=2.0, help="idle seconds before a reading")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
        for _ in range(args.runs):
            result = run_once(args.devices, args.concurrency, args.settle, Path(tmp))
            print(result, flush=True)
            runs.append(result)
    keys = (
        "bytes_per_device",
        "marginal_bytes_per_device",
        "rss_base_bytes",
        "rss_final_bytes",
        "register_seconds",
        "register_per_second",
    )
    summary = {key: median([r[key] for r in runs]) for key in keys}
    mib = 1024 * 1024
    print_table(
        f"memory per tracked device ({args.devices} devices, median of {len(runs)})",
        [
            ("RSS growth / device", f"{summary['bytes_per_device']:.0f} bytes"),
            ("marginal (second half)", f"{summary['marginal_bytes_per_device']:.0f} bytes"),
            (
                "RSS empty → full",
                f"{summary['rss_base_bytes'] / mib:.1f} MiB → "
                f"{summary['rss_final_bytes'] / mib:.1f} MiB",
            ),
            (
                "registering",
                f"{summary['register_seconds']:.1f} s  "
                f"({summary['register_per_second']:.0f} devices/s, batches of {BATCH}, "
                f"{args.concurrency} clients)",
            ),
        ],
    )
    print(f"\nwrote {write_result('memory', summary, runs)}")


if __name__ == "__main__":
    main()
