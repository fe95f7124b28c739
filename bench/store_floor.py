"""The store's share of a burst: committing N timeouts to SQLite, with no hub around it.

A hub on a real SQLite file registers N devices; then ``SQLiteStore.apply`` is given
exactly what the hub hands it for a burst of N timeouts (one ``PresenceColumns`` row
and one event per device, in chunks of ``--chunk`` as the sweep cuts them) and the
time to make them durable is measured: the event loop does nothing else meanwhile.
Presence rows alone, events alone and both (what a burst needs) are timed separately.
This is the floor under ``bench.burst``: no sweep, no publication.

    .venv/bin/python -m bench.store_floor                      # 100 000 devices, 3 runs
    .venv/bin/python -m bench.store_floor --devices 5000 --runs 1
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import median, print_table, write_result
from lastseen.presence import DeviceState, Reason, Source, Status, Transition
from lastseen.store import (
    Batch,
    DeviceQuery,
    DeviceRecord,
    EventRecord,
    PresenceColumns,
    SQLiteStore,
)

T0 = 1_800_000_000.0


def _columns(ids: list[str], status: Status, at: float) -> PresenceColumns:
    n = len(ids)
    return PresenceColumns(
        ids=ids,
        status=[status] * n,
        since=[at] * n,
        last_seen=[T0] * n,
        last_own=[T0] * n,
        anchor=[T0] * n,
        reason=[Reason.STALE_TIMEOUT] * n,
        source=[Source.TIMEOUT] * n,
        session=[None] * n,
        flaps=[(T0, at)] * n,
        flapping=[False] * n,
    )


def _events(
    ids: list[str], first_seq: int, from_: Status, to: Status, at: float
) -> list[EventRecord]:
    transition = Transition(from_, to, at, Reason.STALE_TIMEOUT, Source.TIMEOUT)
    return [EventRecord(first_seq + i, device_id, transition) for i, device_id in enumerate(ids)]


async def _run(devices: int, chunk: int, workdir: Path) -> dict[str, Any]:
    store = SQLiteStore(workdir / f"floor-{time.monotonic_ns()}.db")
    await store.open()
    try:
        ids = [f"d{i:07d}" for i in range(devices)]
        online = DeviceState(Status.ONLINE, T0, T0, T0, T0, Reason.HEARTBEAT, Source.HEARTBEAT)
        for start in range(0, devices, 10_000):
            await store.apply(
                Batch(
                    upserts=[
                        DeviceRecord(
                            id=i, profile="default", state=online, created_at=T0, updated_at=T0
                        )
                        for i in ids[start : start + 10_000]
                    ]
                )
            )
        seq = 1
        result: dict[str, Any] = {"devices": devices, "chunk": chunk}
        steps = (
            ("presence", Status.STALE, True, False),
            ("events", Status.OFFLINE, False, True),
            ("both", Status.ONLINE, True, True),
        )
        for name, to, presence, events in steps:
            at = T0 + seq
            started = time.perf_counter()
            for start in range(0, devices, chunk):
                part = ids[start : start + chunk]
                batch_events = _events(part, seq, Status.ONLINE, to, at) if events else []
                seq += len(batch_events)
                await store.apply(
                    Batch(
                        presence_columns=_columns(part, to, at) if presence else None,
                        events=batch_events,
                    )
                )
            result[f"{name}_seconds"] = round(time.perf_counter() - started, 3)
        # What was written, so a smoke run can check it: 2N events, every device online.
        result["last_seq"] = await store.last_seq()
        result["online"] = len(
            await store.list_devices(DeviceQuery(status=Status.ONLINE, limit=devices))
        )
        return result
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5000, help="rows per transaction")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="lastseen-bench-") as tmp:
        for _ in range(args.runs):
            result = asyncio.run(_run(args.devices, args.chunk, Path(tmp)))
            print(result, flush=True)
            runs.append(result)
    keys = ("presence_seconds", "events_seconds", "both_seconds")
    summary = {k: median([r[k] for r in runs]) for k in keys}
    per = 1e6 / args.devices
    print_table(
        f"SQLite store: {args.devices} timeouts made durable, {args.chunk} a transaction "
        f"(median of {len(runs)})",
        [
            (name, f"{summary[k]} s  ({summary[k] * per:.1f} µs a device)")
            for name, k in zip(("presence rows", "events", "both (a burst)"), keys, strict=True)
        ],
    )
    print(f"\nwrote {write_result('store_floor', summary, runs)}")


if __name__ == "__main__":
    main()
