"""PostgreSQL store: transition-commit throughput and device listing, SQLite alongside.

Setup (each run, each backend, a fresh database): N devices registered in one batch.
Then, timed:

* ``commit``: one ``apply`` of N transitions (a presence update and an event per
  device, exactly what the hub's sweeper commits when N devices time out together);
* ``commit_idem``: the same as an ``idempotent`` batch (the scale-out outbox path:
  ``ON CONFLICT (seq) DO NOTHING`` and the per-device version guard), new seqs;
* ``replay``: that idempotent batch delivered again (every row skipped);
* ``page``: ``list_devices`` of one page of 100 from the middle, filtered by status
  (median of 50 calls, milliseconds);
* ``walk``: every device through cursor pages of 1 000;
* ``load``: ``load_devices`` (what a start-up reads).

    .venv/bin/python -m bench.postgres_store                        # 10 000 devices, 3 runs
    .venv/bin/python -m bench.postgres_store --devices 100000 --runs 1
    .venv/bin/python -m bench.postgres_store --dsn postgresql://u@db/empty_db

Without ``--dsn`` each run creates a database on the local server
(``--admin-dsn``, default ``postgresql://postgres@127.0.0.1:5432/postgres``) and drops
it afterwards. With ``--dsn`` the database must be empty; it is used as is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from bench.common import median, print_table, write_result
from lastseen.presence import DeviceState, Reason, Source, Status, Transition
from lastseen.store import Batch, DeviceQuery, DeviceRecord, EventRecord, PresenceUpdate, Store
from lastseen.store.postgres import PostgresStore
from lastseen.store.sqlite import SQLiteStore

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.asynccontextmanager
async def fresh_database(admin_dsn: str) -> AsyncIterator[str]:
    name = f"lastseen_bench_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items()})
    finally:
        async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fleet(devices: int) -> list[DeviceRecord]:
    return [
        DeviceRecord(
            id=f"dev-{i:07d}",
            profile="default",
            state=DeviceState(Status.ONLINE, since=1.0, last_seen=1.0, last_own=1.0, anchor=1.0),
            labels={"site": f"s{i % 20}"},
            attributes={"fw": "1.2.3", "model": "pi4"},
            created_at=1.0,
            updated_at=1.0,
        )
        for i in range(devices)
    ]


def timeouts(records: list[DeviceRecord], first_seq: int, *, version: int) -> Batch:
    """Every device online → stale, as the sweeper commits it."""
    stale = DeviceState(
        Status.STALE, since=41.0, last_seen=1.0, last_own=1.0, anchor=1.0,
        reason=Reason.STALE_TIMEOUT, source=Source.TIMEOUT, flaps=(1.0, 41.0),
    )  # fmt: skip
    move = Transition(Status.ONLINE, Status.STALE, 41.0, Reason.STALE_TIMEOUT, Source.TIMEOUT)
    return Batch(
        presence=[PresenceUpdate(r.id, stale, version=version) for r in records],
        events=[EventRecord(first_seq + i, r.id, move) for i, r in enumerate(records)],
        idempotent=version > 0,
    )


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def measure(store: Store, devices: int) -> dict[str, float]:
    records = fleet(devices)
    await store.open()
    try:
        await store.apply(Batch(upserts=records))
        commit = await timed(lambda: store.apply(timeouts(records, 1, version=0)))
        idem = timeouts(records, devices + 1, version=1)
        commit_idem = await timed(lambda: store.apply(idem))
        replay = await timed(lambda: store.apply(idem))
        middle = records[devices // 2].id
        query = DeviceQuery(status=Status.STALE, after=middle, limit=100)
        pages = []
        for _ in range(50):
            pages.append(await timed(lambda: store.list_devices(query)))

        async def walk() -> None:
            after: str | None = None
            seen = 0
            while page := await store.list_devices(DeviceQuery(after=after, limit=1000)):
                seen += len(page)
                after = page[-1].id
            assert seen == devices, seen

        walked = await timed(walk)
        loaded = await timed(store.load_devices)
        assert await store.last_seq() == 2 * devices
    finally:
        await store.close()
    return {
        "commit_s": round(commit, 4),
        "commit_tps": round(devices / commit),
        "commit_idem_s": round(commit_idem, 4),
        "replay_s": round(replay, 4),
        "page_ms": round(median(pages) * 1000, 3),
        "walk_s": round(walked, 4),
        "walk_dps": round(devices / walked),
        "load_s": round(loaded, 4),
    }


async def run_once(args: argparse.Namespace) -> dict[str, Any]:
    if args.dsn:
        postgres = await measure(PostgresStore(args.dsn), args.devices)
    else:
        async with fresh_database(args.admin_dsn) as dsn:
            postgres = await measure(PostgresStore(dsn), args.devices)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await measure(SQLiteStore(Path(tmp) / "bench.db"), args.devices)
    return {"postgres": postgres, "sqlite": sqlite}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dsn", help="an empty database to use (only with --runs 1)")
    parser.add_argument("--admin-dsn", default=ADMIN_DSN, help="where fresh databases are made")
    args = parser.parse_args()
    if args.dsn and args.runs != 1:
        parser.error("--dsn holds one run's data: use --runs 1 with it")
    runs = [asyncio.run(run_once(args)) for _ in range(args.runs)]
    summary: dict[str, Any] = {}
    for backend in ("postgres", "sqlite"):
        keys = runs[0][backend].keys()
        summary[backend] = {k: median([r[backend][k] for r in runs]) for k in keys}
    pg, lite = summary["postgres"], summary["sqlite"]

    def both(key: str, text: str) -> str:
        return f"{text.format(pg[key])} | {text.format(lite[key])}"

    print_table(
        f"store: {args.devices} devices, median of {args.runs} run(s)  (postgres | sqlite)",
        [
            (f"commit {args.devices} transitions", both("commit_s", "{:.3f} s")),
            ("  transitions per second", both("commit_tps", "{:,.0f}")),
            ("same, idempotent (outbox)", both("commit_idem_s", "{:.3f} s")),
            ("replay of that batch", both("replay_s", "{:.3f} s")),
            ("one page of 100 (status)", both("page_ms", "{:.2f} ms")),
            ("walk all, pages of 1000", both("walk_s", "{:.3f} s")),
            ("  devices per second", both("walk_dps", "{:,.0f}")),
            ("load_devices", both("load_s", "{:.3f} s")),
        ],
    )
    path = write_result("postgres_store", {str(args.devices): summary}, runs)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
