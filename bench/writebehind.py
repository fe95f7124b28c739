"""The heartbeat write-behind's flush, in process: seen rows against presence updates.

A SQLite store holds ``--devices`` devices; each round marks ``--rows`` random ones
seen (their three times moved in a ``DeviceTable``, as a heartbeat does) and flushes
them once as ``Batch.seen`` rows read from the columns (what the hub writes since
round 5) and once as ``PresenceUpdate``s built from each device's ``DeviceState``
(what it wrote before), taking turns. For each it reports the CPU time of building
the batch on the event loop (``snapshot``) and of the store's ``apply``, which also
counts the writer thread (``time.process_time`` is the whole process), and the wall
time of ``apply``; divided by the rows, that is what the write-behind costs per
heartbeat of a fleet where every heartbeat is a different device.

    .venv/bin/python -m bench.writebehind                               # 10^6 devices
    .venv/bin/python -m bench.writebehind --devices 10000 --rows 10000 --runs 1
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import median, print_table, write_result
from lastseen.hub.table import DeviceTable
from lastseen.presence import DeviceState, Profile, Reason, Source, Status
from lastseen.store import Batch, DeviceRecord, PresenceUpdate, SeenRow, SQLiteStore

T0 = 1_800_000_000.0
KINDS = ("seen", "presence")


def _seen(table: DeviceTable, chosen: set[str]) -> Batch:
    # As Hub._snapshot builds it.
    index = table.index
    last_seen, last_own, anchor = table.last_seen, table.last_own, table.anchor
    rows: list[SeenRow] = [
        (device_id, last_seen[n], last_own[n], anchor[n])
        for device_id in sorted(chosen)
        if (n := index.get(device_id)) is not None
    ]
    return Batch(seen=rows)


def _presence(table: DeviceTable, chosen: set[str]) -> Batch:
    # As Hub._snapshot built it before seen rows.
    index, state = table.index, table.state
    return Batch(
        presence=[
            PresenceUpdate(device_id, state(n))
            for device_id in chosen
            if (n := index.get(device_id)) is not None
        ]
    )


async def run_once(devices: int, rows: int, rounds: int) -> dict[str, Any]:
    state = DeviceState(
        status=Status.ONLINE,
        since=T0,
        last_seen=T0,
        last_own=T0,
        anchor=T0,
        reason=Reason.HEARTBEAT,
        source=Source.HEARTBEAT,
    )
    profile = Profile()
    ids = [f"dev-{i:07d}" for i in range(devices)]
    with tempfile.TemporaryDirectory(prefix="lastseen-writebehind-") as tmp:
        store = SQLiteStore(Path(tmp) / "hub.db")
        await store.open()
        try:
            for start in range(0, devices, 100_000):
                await store.apply(
                    Batch(
                        upserts=[
                            DeviceRecord(d, "default", state, created_at=T0, updated_at=T0)
                            for d in ids[start : start + 100_000]
                        ]
                    )
                )
            table = DeviceTable()
            for device_id in ids:
                table.add(device_id, state, profile, T0, T0)
            # As Hub.start does after its load: the table is out of the collector's sight.
            gc.collect()
            gc.freeze()
            pick = random.Random(devices)
            out: dict[str, list[tuple[float, float, float]]] = {k: [] for k in KINDS}
            for round_ in range(rounds):
                for kind in KINDS:
                    chosen = set(pick.sample(ids, min(rows, devices)))
                    now = T0 + 1.0 + round_
                    index = table.index
                    for device_id in chosen:
                        n = index[device_id]
                        table.last_seen[n] = table.last_own[n] = table.anchor[n] = now
                    started = time.process_time()
                    batch = _seen(table, chosen) if kind == "seen" else _presence(table, chosen)
                    built = time.process_time()
                    wall = time.perf_counter()
                    await store.apply(batch)
                    wall = time.perf_counter() - wall
                    applied = time.process_time()
                    out[kind].append((built - started, applied - built, wall))
        finally:
            await store.close()
    per_row = 1e6 / min(rows, devices)
    result: dict[str, Any] = {"devices": devices, "rows": min(rows, devices)}
    for kind, values in out.items():
        result[kind] = {
            "snapshot_us_per_row": round(min(v[0] for v in values) * per_row, 3),
            "apply_cpu_us_per_row": round(min(v[1] for v in values) * per_row, 3),
            "apply_wall_us_per_row": round(min(v[2] for v in values) * per_row, 3),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=135_000, help="devices seen per flush")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="flushes of each kind per run")
    args = parser.parse_args()
    runs = [asyncio.run(run_once(args.devices, args.rows, args.rounds)) for _ in range(args.runs)]
    summary: dict[str, Any] = {
        kind: {k: median([r[kind][k] for r in runs]) for k in runs[0][kind]} for kind in KINDS
    }
    seen, presence = summary["seen"], summary["presence"]

    def both(key: str) -> str:
        return f"{seen[key]:.2f} | {presence[key]:.2f} µs"

    print_table(
        f"write-behind flush: {runs[0]['rows']} of {args.devices} devices, "
        f"median of {args.runs} run(s)  (seen rows | presence updates)",
        [
            ("snapshot CPU per row", both("snapshot_us_per_row")),
            ("apply CPU per row", both("apply_cpu_us_per_row")),
            ("apply wall per row", both("apply_wall_us_per_row")),
        ],
    )
    path = write_result("writebehind", {str(args.devices): summary}, runs)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
