"""The embedded store: one SQLite file under the data directory.

Theory of operation
-------------------
``sqlite3`` is blocking, and a connection belongs to the thread that created it.
So the store owns two single-thread workers, each with its own connection:

* the **writer** runs migrations, every ``apply`` and ``prune_events``. One writer
  means transactions never contend inside the process, and a group commit of a
  100 000-device burst is one ``BEGIN IMMEDIATE ... COMMIT``;
* the **reader** serves every read. In WAL mode readers see the last committed
  state and never wait for the writer, so ``GET /v1/devices`` does not queue behind
  a big batch.

The event loop only hands jobs to the workers (``run_in_executor``); each public
method is exactly one job, so everything submitted before ``close()`` still runs.

Durability: WAL with ``synchronous=NORMAL`` survives a crash of the *process* (a
committed transaction is in the WAL, which the OS has), but the last transactions
before a *power loss or kernel crash* may roll back. That is the usual trade for an
embedded hub; ``FULL`` would fsync on every group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson

from lastseen.errors import Conflict, StoreError
from lastseen.store import rows
from lastseen.store.base import (
    AuditRecord,
    Batch,
    DeviceQuery,
    DeviceRecord,
    DeviceRow,
    EventRecord,
    KeyRecord,
    PresenceColumns,
    PresenceUpdate,
)
from lastseen.store.migrations import sqlite as schema

T = TypeVar("T")

_DEVICE_COLUMNS: Final = (
    "id",
    "profile",
    "labels",
    "attributes",
    "metrics",
    "status",
    "since",
    "last_seen",
    "last_own",
    "anchor",
    "reason",
    "source",
    "session",
    "flaps",
    "flapping",
    "created_at",
    "updated_at",
    "version",
)
_DEVICE_SELECT: Final = f"SELECT {', '.join(_DEVICE_COLUMNS)} FROM devices"
# ``DeviceRow``: codes and NULLs where they spare a new object per row (an empty JSON
# map or flaps array, the status, reason and source strings).
_DEVICE_ROWS_SELECT: Final = (
    "SELECT id, profile, NULLIF(labels, '{}'), NULLIF(attributes, '{}'), "
    f"NULLIF(metrics, '{{}}'), {rows.STATUS_CODE}, since, last_seen, last_own, anchor, "
    f"{rows.REASON_CODE}, {rows.SOURCE_CODE}, session, "
    # A comma: two flaps or more. One flap alone is its number's text, which Python's
    # float() reads exactly (SQLite's own text-to-real conversion may not).
    "CASE WHEN instr(flaps, ',') THEN flaps END, "
    "CASE WHEN flaps <> '[]' AND NOT instr(flaps, ',') "
    "THEN substr(flaps, 2, length(flaps) - 2) END, "
    "flapping, created_at, updated_at FROM devices"
)
_UPSERT_HEAD: Final = f"INSERT INTO devices ({', '.join(_DEVICE_COLUMNS)}) "
_UPSERT_TAIL: Final = (
    " ON CONFLICT (id) DO UPDATE SET "
    # created_at is the first registration; an update never moves it.
    + ", ".join(f"{c} = excluded.{c}" for c in _DEVICE_COLUMNS if c not in ("id", "created_at"))
)
_EVENT_SELECT: Final = (
    "SELECT seq, device_id, from_status, to_status, at, reason, source, flapping FROM events"
)
_EVENT_COLUMNS: Final = "(seq, device_id, from_status, to_status, at, reason, source, flapping) "

#: The writer's page cache in KiB (``PRAGMA cache_size``). Measured on this schema:
#: 100 000 random presence updates of a 1 000 000-row table, and a 100 000-device
#: burst in a 100 000-row table, take the same time with 8 MiB as with 64 MiB (the
#: pages come from the OS page cache either way), while a 64 MiB cache costs 67 bytes
#: of resident memory per device at 10^6 devices.
WRITER_CACHE_KIB: Final = 8192

# Dict lookups instead of Status(value): 12 ns against 280 ns, times 4 per row at 10^6 rows.


class SQLiteStore:
    """The ``Store`` for the embedded hub: one SQLite database file at ``path``.

    ``busy_timeout`` is how many seconds a statement waits for a lock held by
    another process (a backup tool, a second hub by mistake) before failing.
    """

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._writer: _Worker | None = None
        self._reader: _Worker | None = None

    @property
    def path(self) -> Path:
        """The database file (its WAL sits beside it as ``<name>-wal``)."""
        return self._path

    async def open(self) -> None:
        """Connect, refuse a schema newer than this code, apply pending migrations."""
        if self._writer is not None:
            return
        writer = _Worker("lastseen-sqlite-writer")
        reader = _Worker("lastseen-sqlite-reader")
        try:
            # The writer first: the reader must find the schema already in place.
            await writer.start(self._connect_writer)
            await reader.start(self._connect_reader)
        except BaseException as exc:
            await reader.stop()
            await writer.stop()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open SQLite store {self._path}: {exc}") from exc
            raise
        self._writer, self._reader = writer, reader

    async def close(self) -> None:
        """Finish queued jobs, optimise, close both connections and stop both threads.

        Idempotent. Closing the last connection checkpoints and removes the WAL file.
        """
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if reader is not None:
            await reader.stop()
        if writer is not None:
            await writer.stop()

    async def apply(self, batch: Batch) -> None:
        """Apply ``batch`` in one transaction, in the order ``Batch`` gives.

        Raises ``StoreError`` and changes nothing if an event's seq is not greater
        than every seq stored before it. If the caller is cancelled while waiting,
        the batch may still commit: the writer thread cannot be interrupted.
        """
        if not batch:
            return
        await self._run(self._writer, lambda conn: _apply(conn, batch))

    async def load_devices(self) -> list[DeviceRecord]:
        """Every device, in no particular order."""
        return await self._run(self._reader, _load_devices)

    async def device_rows(self) -> AsyncIterator[list[DeviceRow]]:
        """Every device's stored columns (``DeviceRow``), in batches of at most
        ``DEVICE_ROWS_BATCH``: one read transaction (a consistent snapshot), each batch
        one job of the reader."""
        cursor = await self._run(self._reader, lambda conn: conn.execute(_DEVICE_ROWS_SELECT))
        fetch = partial(self._run, self._reader, partial(_fetch_rows, cursor))
        # The next batch is read while the caller decodes this one: SQLite steps
        # through the table without the interpreter lock, on the other core.
        ahead = asyncio.ensure_future(fetch())
        try:
            while batch := await ahead:
                ahead = asyncio.ensure_future(fetch())
                yield batch
        finally:
            # A batch read ahead for a caller that stopped early is dropped; one that
            # failed is no news to it (its outcome is taken so asyncio does not log it).
            if not ahead.cancel():
                ahead.exception()
            # Ends the read transaction, also when the caller stops early (the reader
            # runs this after the read ahead, in order).
            with contextlib.suppress(StoreError):
                await self._run(self._reader, lambda _conn: cursor.close())

    async def get_device(self, device_id: str) -> DeviceRecord | None:
        """The device with this id, or None."""

        def job(conn: sqlite3.Connection) -> DeviceRecord | None:
            row = conn.execute(f"{_DEVICE_SELECT} WHERE id = ?", (device_id,)).fetchone()
            return None if row is None else _device(row)

        return await self._run(self._reader, job)

    async def list_devices(self, query: DeviceQuery) -> list[DeviceRecord]:
        """Devices matching every filter of ``query`` with id > ``query.after``, by id."""
        if query.limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        sql, params = _list_sql(query)
        return await self._run(
            self._reader, lambda conn: [_device(row) for row in conn.execute(sql, params)]
        )

    async def events(
        self, after: int, limit: int, device_id: str | None = None
    ) -> list[EventRecord]:
        """Events with seq > ``after`` (of one device, if given) in seq order."""
        if limit <= 0:
            return []
        if device_id is None:
            sql = f"{_EVENT_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?"
            params: tuple[object, ...] = (after, limit)
        else:
            sql = f"{_EVENT_SELECT} WHERE device_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            params = (device_id, after, limit)
        return await self._run(
            self._reader, lambda conn: [rows.event(row) for row in conn.execute(sql, params)]
        )

    async def last_seq(self) -> int:
        """The highest seq ever stored (0 if none); pruning and deletes never lower it."""
        return await self._run(self._reader, _last_seq)

    async def first_seq(self) -> int:
        """The lowest seq still retained, or ``last_seq() + 1`` if none is."""

        def job(conn: sqlite3.Connection) -> int:
            # One read transaction, so a concurrent apply cannot land between the two.
            with _transaction(conn, "BEGIN"):
                first = conn.execute("SELECT min(seq) FROM events").fetchone()[0]
                return _last_seq(conn) + 1 if first is None else int(first)

        return await self._run(self._reader, job)

    async def prune_events(self, before: float) -> int:
        """Delete events with ``at`` < ``before``; returns how many."""

        def job(conn: sqlite3.Connection) -> int:
            with _transaction(conn, "BEGIN IMMEDIATE"):
                return conn.execute("DELETE FROM events WHERE at < ?", (before,)).rowcount

        return await self._run(self._writer, job)

    async def size_bytes(self) -> int:
        """Bytes of the database file plus its write-ahead log."""
        path = self._path
        wal = path.with_name(path.name + "-wal")
        return await self._run(self._reader, lambda _conn: _file_size(path) + _file_size(wal))

    # --- keys -----------------------------------------------------------------------

    async def put_key(self, key: KeyRecord, *, only_if_none: bool = False) -> bool:
        """Insert ``key``; with ``only_if_none``, only into a store that has no key yet.

        The check and the insert share one write transaction: two hubs bootstrapping
        the same fresh store create one key between them, not two.
        """

        def job(conn: sqlite3.Connection) -> bool:
            with _transaction(conn, "BEGIN IMMEDIATE"):
                if only_if_none and conn.execute("SELECT 1 FROM keys LIMIT 1").fetchone():
                    return False
                try:
                    conn.execute(_KEY_INSERT, rows.key_row(key))
                except sqlite3.IntegrityError:
                    if only_if_none:
                        return False
                    raise Conflict(
                        f"a key with id {key.id!r} (or the same secret) already exists"
                    ) from None
                _bump_keys_version(conn)
            return True

        return await self._run(self._writer, job)

    async def revoke_key(self, key_id: str, at: float) -> KeyRecord | None:
        """Revoke at ``at`` unless already revoked; the stored key, or None if unknown."""

        def job(conn: sqlite3.Connection) -> KeyRecord | None:
            with _transaction(conn, "BEGIN IMMEDIATE"):
                changed = conn.execute(
                    "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    (at, key_id),
                ).rowcount
                if changed:
                    _bump_keys_version(conn)
                row = conn.execute(f"{_KEY_SELECT} WHERE id = ?", (key_id,)).fetchone()
            return None if row is None else rows.key(row)

        return await self._run(self._writer, job)

    async def load_keys(self) -> list[KeyRecord]:
        """Every key, revoked included, oldest first."""
        sql = f"{_KEY_SELECT} ORDER BY created_at, id"
        return await self._run(self._reader, lambda c: [rows.key(row) for row in c.execute(sql)])

    async def keys_version(self) -> int:
        """Bumped in the same transaction as every key change."""
        sql = "SELECT value FROM meta WHERE key = 'keys_version'"
        return await self._run(self._reader, lambda c: int(c.execute(sql).fetchone()[0]))

    # --- audit ----------------------------------------------------------------------

    async def append_audit(self, record: AuditRecord) -> int:
        """Append one record in its own transaction; returns its id."""
        try:
            details = _dumps(record.details)
        except TypeError as exc:
            raise StoreError(f"cannot encode audit details as JSON: {exc}") from exc
        row = (record.at, record.actor, record.action, record.target, record.source, details)

        def job(conn: sqlite3.Connection) -> int:
            with _transaction(conn, "BEGIN IMMEDIATE"):
                cursor = conn.execute(_AUDIT_INSERT, row)
            return int(cursor.lastrowid or 0)

        return await self._run(self._writer, job)

    async def audit(
        self,
        *,
        after: int = 0,
        before: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[AuditRecord]:
        """Records with ``after`` < id < ``before``, in id order or newest first."""
        if limit <= 0:
            return []
        order = "DESC" if newest_first else "ASC"
        sql = f"{_AUDIT_SELECT} WHERE id > ? AND id < ? ORDER BY id {order} LIMIT ?"
        # SQLite integers stop at 2^63 - 1: that bound is "no bound".
        params = (after, 2**63 - 1 if before is None else before, limit)
        return await self._run(
            self._reader, lambda conn: [rows.audit(row) for row in conn.execute(sql, params)]
        )

    async def prune_audit(self, before: float) -> int:
        """Delete audit records with ``at`` < ``before``; returns how many."""

        def job(conn: sqlite3.Connection) -> int:
            with _transaction(conn, "BEGIN IMMEDIATE"):
                return conn.execute("DELETE FROM audit WHERE at < ?", (before,)).rowcount

        return await self._run(self._writer, job)

    async def _run(self, worker: _Worker | None, job: Callable[[sqlite3.Connection], T]) -> T:
        if worker is None:
            raise StoreError(f"the SQLite store {self._path} is not open")
        try:
            return await worker.run(job)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self._path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; every job says BEGIN itself.
        # timeout= is SQLite's busy timeout: wait this long for another process's lock.
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            # Bound the ANALYZE that PRAGMA optimize may run at close on a big table.
            conn.execute("PRAGMA analysis_limit = 1000")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            _refuse_newer_schema(conn, self._path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"SQLite store {self._path}: cannot enable WAL (got {mode})")
            # Durable across process crashes; see the module docstring for power loss.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            # A read job that tried to write would be a bug; make SQLite say so.
            conn.execute("PRAGMA query_only = ON")
        except BaseException:
            conn.close()
            raise
        return conn


class _Worker:
    """One thread and the one connection it owns (a connection stays in its thread)."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

    async def start(self, connect: Callable[[], sqlite3.Connection]) -> None:
        def job() -> None:
            self._conn = connect()

        await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                raise StoreError("the SQLite store is not open")
            return job(self._conn)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def stop(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        finally:
            # The queue is empty by now, so this join does not hold up the loop.
            self._executor.shutdown(wait=True)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            # Statistics for the query planner; a hint, never a reason to keep a
            # connection open, hence the suppression.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA query_only = OFF")
                conn.execute("PRAGMA optimize")
        finally:
            conn.close()


# --- schema -----------------------------------------------------------------------


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _refuse_newer_schema(conn: sqlite3.Connection, path: Path) -> None:
    known = schema.MIGRATIONS[-1][0]
    found = _user_version(conn)
    if found > known:
        raise StoreError(
            f"SQLite store {path} has schema version {found}, but this lastseen only "
            f"knows up to {known}: it was written by a newer lastseen; upgrade lastseen "
            "or point --data-dir elsewhere"
        )


def _migrate(conn: sqlite3.Connection) -> None:
    for version, script in schema.MIGRATIONS:
        # The version is re-read under the write lock: two processes opening the
        # same fresh file must not both apply a step.
        with _transaction(conn, "BEGIN IMMEDIATE"):
            if _user_version(conn) >= version:
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(version)}")


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements. ``executescript`` would commit our transaction."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip().rstrip(";").strip():
                yield pending
            pending = ""
    if pending.strip().rstrip(";").strip():
        raise StoreError(f"incomplete SQL statement in migration: {pending.strip()!r}")


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[None]:
    conn.execute(begin)
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --- jobs -------------------------------------------------------------------------


def _apply(conn: sqlite3.Connection, batch: Batch) -> None:
    # Encode outside the transaction: the write lock is held only for SQL.
    try:
        # In id order the upserts walk the primary-key B-tree instead of hopping
        # across it: measured 4x faster for 100 000 random ids in a 10^6-row table.
        # The sort is stable, so of two upserts of one id the later still wins.
        devices = sorted((_device_row(record) for record in batch.upserts), key=itemgetter(0))
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise StoreError(f"cannot encode device as JSON: {exc}") from exc
    # Seen rows are written in the order given: sorted by id they walk the B-trees as
    # the upserts do (measured 2x less CPU than random order for 135 000 of 10^6 rows).
    # The hub sorts its ids, which is cheaper than sorting the rows here again (a keyed
    # sort of sorted rows is still 0.4 us a row). One statement updates a row once: the
    # last row of each id is kept (``rows.seen``), as in PostgreSQL.
    seen = rows.seen(batch)
    idempotent = batch.idempotent
    # One row per device (``rows.presence_updates``): one UPDATE ... FROM (VALUES ...)
    # would apply an arbitrary one of two rows of the same device.
    presence = [_presence_row(u) for u in rows.presence_updates(batch)]
    if batch.presence_columns:
        presence += _presence_column_rows(batch.presence_columns)
    presence.sort(key=itemgetter(11))
    events = [_event_row(event) for event in batch.events]
    with _transaction(conn, "BEGIN IMMEDIATE"):
        if events and not idempotent:
            _check_seqs(batch.events, _last_seq(conn))
        # First, so that any fuller write of the same device in this batch wins.
        _execute_rows(conn, _SEEN_UPDATE_NEWER if idempotent else _SEEN_UPDATE, seen)
        _execute_rows(conn, _UPSERT_NEWER if idempotent else _UPSERT, devices)
        _execute_rows(conn, _PRESENCE_UPDATE_NEWER if idempotent else _PRESENCE_UPDATE, presence)
        conn.executemany("DELETE FROM devices WHERE id = ?", [(i,) for i in batch.deletes])
        if events:
            if idempotent:
                # At least once: a seq already stored is a replay, not an error.
                _execute_rows(conn, _EVENT_INSERT_NEW, events)
                conn.execute(
                    "UPDATE meta SET value = max(value, ?) WHERE key = 'last_seq'",
                    (max(e.seq for e in batch.events),),
                )
            else:
                _execute_rows(conn, _EVENT_INSERT, events)
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'last_seq'", (batch.events[-1].seq,)
                )


#: Rows bound into one statement by ``_execute_rows``: at most 18 000 variables (an
#: upsert's 18 columns), under the 32 766 of SQLite builds since 3.32.
_ROWS_PER_STATEMENT: Final = 1000


class _RowsSQL:
    """A statement over many rows at once: ``head`` + ``VALUES (?, ...), (?, ...)`` +
    ``tail``, prepared once per row count (sqlite3 caches it by its text)."""

    __slots__ = ("_texts", "head", "tail", "width")

    def __init__(self, head: str, width: int, tail: str = "") -> None:
        self.head = head
        self.width = width
        self.tail = tail
        self._texts: dict[int, str] = {}

    def text(self, count: int) -> str:
        found = self._texts.get(count)
        if found is None:
            row = f"({', '.join('?' * self.width)})"
            found = f"{self.head}VALUES {', '.join([row] * count)}{self.tail}"
            if len(self._texts) < 4:  # the full chunk, and a few remainders
                self._texts[count] = found
        return found


def _execute_rows(
    conn: sqlite3.Connection, sql: _RowsSQL, rows: Sequence[tuple[object, ...]]
) -> None:
    """``executemany``, as statements of up to ``_ROWS_PER_STATEMENT`` rows each.

    ``executemany`` steps every row separately, and sqlite3 releases and re-takes the
    interpreter lock around each step. While the event loop keeps that lock busy (a
    burst's sweep and publication, a heartbeat flood), every re-take waits up to the
    switch interval, so a 100 000-row commit took several times its idle time. One
    statement of a thousand rows takes the lock once to bind them and then runs in C
    without it (measured: 100 000 transitions committed beside a busy thread in 4.9-5.6 s
    instead of 9.3-14.1 s; ``bench.burst`` in BENCHMARKS.md).
    """
    if not rows:
        return
    chain = itertools.chain.from_iterable
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        part = rows[start : start + _ROWS_PER_STATEMENT]
        conn.execute(sql.text(len(part)), list(chain(part)))


# The row is (status, since, last_seen, last_own, anchor, reason, source, session,
# flaps, flapping, version, id): see ``_presence_row``.
_PRESENCE_SET: Final = (
    "UPDATE devices SET status = u.column1, since = u.column2, last_seen = u.column3, "
    "last_own = u.column4, anchor = u.column5, reason = u.column6, source = u.column7, "
    "session = u.column8, flaps = u.column9, flapping = u.column10, version = u.column11 "
    "FROM ("
)
_PRESENCE_UPDATE: Final = _RowsSQL(_PRESENCE_SET, 12, ") AS u WHERE devices.id = u.column12")
_PRESENCE_UPDATE_NEWER: Final = _RowsSQL(
    _PRESENCE_SET, 12, ") AS u WHERE devices.id = u.column12 AND devices.version < u.column11"
)
# A seen row is (id, last_seen, last_own, anchor); SQLite stores a bound NaN as NULL,
# which is what ``SeenRow`` means by it.
_SEEN_SET: Final = (
    "UPDATE devices SET last_seen = u.column2, last_own = u.column3, anchor = u.column4 FROM ("
)
_SEEN_UPDATE: Final = _RowsSQL(_SEEN_SET, 4, ") AS u WHERE devices.id = u.column1")
_SEEN_UPDATE_NEWER: Final = _RowsSQL(
    _SEEN_SET,
    4,
    ") AS u WHERE devices.id = u.column1 "
    "AND (devices.last_seen IS NULL OR devices.last_seen < u.column2)",
)
_UPSERT: Final = _RowsSQL(_UPSERT_HEAD, len(_DEVICE_COLUMNS), _UPSERT_TAIL)
# An idempotent batch moves a stored device only forwards (see Batch.idempotent).
_UPSERT_NEWER: Final = _RowsSQL(
    _UPSERT_HEAD, len(_DEVICE_COLUMNS), f"{_UPSERT_TAIL} WHERE excluded.version > devices.version"
)
_EVENT_INSERT: Final = _RowsSQL(f"INSERT INTO events {_EVENT_COLUMNS}", 8)
_EVENT_INSERT_NEW: Final = _RowsSQL(f"INSERT OR IGNORE INTO events {_EVENT_COLUMNS}", 8)


def _presence_row(update: PresenceUpdate) -> tuple[object, ...]:
    s = update.state
    # ``.value``, not the enum: sqlite3 binds a str subclass only after a failed
    # adapter lookup, measured 2.5x slower than the property call.
    return (
        s.status.value,
        s.since,
        s.last_seen,
        s.last_own,
        s.anchor,
        None if s.reason is None else s.reason.value,
        None if s.source is None else s.source.value,
        s.session,
        _dumps(s.flaps) if s.flaps else "[]",
        int(s.flapping),
        update.version,
        update.id,
    )


def _presence_column_rows(c: PresenceColumns) -> Iterator[tuple[object, ...]]:
    """``_presence_row`` for each position of ``c``, a column at a time."""
    status, reason, source = rows.presence_codes(c)
    return zip(
        status,
        c.since,
        c.last_seen,
        c.last_own,
        c.anchor,
        reason,
        source,
        c.session,
        [_dumps(f) if f else "[]" for f in c.flaps],
        [int(f) for f in c.flapping],
        itertools.repeat(0),
        c.ids,
        strict=False,  # the version column is endless
    )


def _check_seqs(events: Sequence[EventRecord], last_seq: int) -> None:
    previous = last_seq
    for event in events:
        if event.seq <= previous:
            raise StoreError(
                f"event seq {event.seq} (device {event.device_id!r}) is not greater than "
                f"{previous}: seqs must strictly increase; the batch was not applied"
            )
        previous = event.seq


def _last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0])


def _load_devices(conn: sqlite3.Connection) -> list[DeviceRecord]:
    # 10^6 records are several million new container objects, and the cyclic GC
    # would rescan the growing heap again and again: measured 2.3x slower. They can
    # form no cycles, so pause the collector (process-wide) for the few seconds the
    # start-up load takes.
    with _gc_paused():
        return [_device(row) for row in conn.execute(_DEVICE_SELECT)]


def _fetch_rows(cursor: sqlite3.Cursor, _conn: sqlite3.Connection) -> list[Any]:
    # The row tuples are built by sqlite3 in C; no decoding here.
    with _gc_paused():
        return cursor.fetchmany(rows.DEVICE_ROWS_BATCH)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _list_sql(query: DeviceQuery) -> tuple[str, list[object]]:
    where: list[str] = []
    params: list[object] = []
    if query.status is not None:
        where.append("status = ?")
        params.append(query.status.value)
    if query.profile is not None:
        where.append("profile = ?")
        params.append(query.profile)
    if query.label is not None:
        key, value = query.label
        if '"' in key:
            # A JSON path cannot quote a '"'; json_each compares the key as data.
            where.append(
                "EXISTS (SELECT 1 FROM json_each(devices.labels) AS l "
                "WHERE l.key = ? AND l.value = ?)"
            )
            params += [key, value]
        else:
            # Quoting the key keeps '.', '[' and '$' in it from being read as path syntax.
            where.append("json_extract(labels, ?) = ?")
            params += [f'$."{key}"', value]
    if query.after is not None:
        where.append("id > ?")
        params.append(query.after)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    params.append(query.limit)
    return f"{_DEVICE_SELECT}{clause} ORDER BY id LIMIT ?", params


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# --- rows -------------------------------------------------------------------------


def _json_default(value: object) -> object:
    # orjson serialises dict but not other Mappings (MappingProxyType, frozen maps).
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: object) -> str:
    # TEXT, not the bytes orjson returns: SQLite's JSON functions refuse BLOBs.
    return orjson.dumps(value, default=_json_default).decode()


def _device_row(record: DeviceRecord) -> tuple[object, ...]:
    s = record.state
    return (
        record.id,
        record.profile,
        _dumps(record.labels) if record.labels else "{}",
        _dumps(record.attributes) if record.attributes else "{}",
        _dumps(record.metrics) if record.metrics else "{}",
        s.status.value,
        s.since,
        s.last_seen,
        s.last_own,
        s.anchor,
        None if s.reason is None else s.reason.value,
        None if s.source is None else s.source.value,
        s.session,
        _dumps(s.flaps),
        int(s.flapping),
        record.created_at,
        record.updated_at,
        record.version,
    )


def _device(row: Any) -> DeviceRecord:
    return rows.device(row, lambda flaps: tuple(orjson.loads(flaps)))


def _event_row(event: EventRecord) -> tuple[object, ...]:
    t = event.transition
    return (
        event.seq,
        event.device_id,
        t.from_status.value,
        t.to_status.value,
        t.at,
        t.reason.value,
        t.source.value,
        int(t.flapping),
    )


_KEY_COLUMNS: Final = (
    "id, role, name, digest, device_id, max_per_minute, created_at, created_by, revoked_at"
)
_KEY_SELECT: Final = f"SELECT {_KEY_COLUMNS} FROM keys"
_KEY_INSERT: Final = f"INSERT INTO keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_AUDIT_SELECT: Final = "SELECT id, at, actor, action, target, source, details FROM audit"
_AUDIT_INSERT: Final = (
    "INSERT INTO audit (at, actor, action, target, source, details) VALUES (?, ?, ?, ?, ?, ?)"
)


def _bump_keys_version(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'keys_version'")
