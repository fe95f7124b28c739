"""The durable store on PostgreSQL: devices, transitions, keys and audit in one database.

Theory of operation
-------------------
Every public method is one pooled connection (``psycopg_pool``) and one transaction
or one statement; nothing is held between calls, so any number of processes may
share the database. What must not race is decided by PostgreSQL itself:

* appending events locks the ``last_seq`` row of ``meta`` first (``FOR UPDATE``):
  appends from several processes queue there, and the strictly increasing seq check
  of ``Batch`` is made under that lock. An ``idempotent`` batch (the scale-out
  outbox, delivering at least once) inserts with ``ON CONFLICT (seq) DO NOTHING``
  and raises ``last_seq`` to ``GREATEST(last_seq, its highest seq)``; its device
  writes carry a per-device ``version`` and land only if newer than the stored one;
* bulk writes are ``COPY`` into per-connection temporary tables, merged with one
  statement per kind (see ``pgrows``). Two processes writing overlapping devices
  at once may deadlock; PostgreSQL then aborts one, which surfaces as
  ``StoreUnavailable`` and is retried like any failed commit;
* migrations run under a transaction-level advisory lock (``migrations.postgres``),
  and a bootstrap ``put_key(only_if_none=True)`` under another one.

Failure is bounded and typed. Getting a connection waits at most
``connect_timeout`` seconds (1.5 by default) and a statement at most
``query_timeout`` (30 s; ``load_devices`` at most ``load_timeout``, 10 min); a
server that is down, refusing or silent surfaces as ``StoreUnavailable`` (a
``StoreError``), never a hang. The pool reconnects by
itself when the server is back. The DSN's password never appears in a message.

``exclusive=True`` (what ``lastseen serve --postgres`` without Redis uses) also
holds a session advisory lock on a connection of its own for as long as the store
is open: a second embedded hub on the same database is refused at start instead of
interleaving its own seqs with the first one's. The lock lives and dies with that one
connection: if the database server restarts, it is gone until the hub restarts too
(the hub keeps working; only the guard against a second hub is lost meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from lastseen.errors import Conflict, StoreError, StoreUnavailable
from lastseen.store import pgrows as rows
from lastseen.store import pgsession
from lastseen.store.base import (
    AuditRecord,
    Batch,
    DeviceQuery,
    DeviceRecord,
    DeviceRow,
    EventRecord,
    KeyRecord,
)
from lastseen.store.pgsession import Conn, describe_dsn
from lastseen.store.rows import DEVICE_ROWS_BATCH

T = TypeVar("T")

_TABLES: Final = ("devices", "events", "meta", "keys", "audit", "schema_version")


class PostgresStore:
    """The ``Store`` on PostgreSQL (``psycopg`` 3, async, with a connection pool).

    ``dsn`` is a ``postgresql://`` URL or a libpq ``key=value`` string.
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: float = 1.5,
        query_timeout: float = 30.0,
        load_timeout: float = 600.0,
        exclusive: bool = False,
    ) -> None:
        self._dsn = dsn
        self._where = describe_dsn(dsn)
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._query_timeout = query_timeout
        self._load_timeout = load_timeout
        self._conn_kwargs = pgsession.connect_kwargs(connect_timeout)
        self._exclusive = exclusive
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._holder: Conn | None = None

    @property
    def where(self) -> str:
        """The database, as shown in messages (never with a password)."""
        return self._where

    async def open(self) -> None:
        """Connect, refuse a schema newer than this code, apply pending migrations.

        The first connection is made directly, bounded by ``connect_timeout`` (a pool
        would keep retrying in the background); it runs the migrations and, with
        ``exclusive``, stays open holding the hub lock. The pool then fills lazily.
        """
        if self._pool is not None:
            return
        conn = await self._connect()
        try:
            await pgsession.migrate(conn, self._where)
            if self._exclusive:
                await pgsession.lock_exclusive(conn, self._where)
        except psycopg.Error as exc:
            await conn.close()
            raise self._error(exc) from exc
        except BaseException:
            await conn.close()
            raise
        if self._exclusive:
            self._holder = conn
        else:
            await conn.close()
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._dsn,
            kwargs=self._conn_kwargs,
            min_size=self._min_size,
            max_size=self._max_size,
            open=False,
            timeout=self._connect_timeout,
            # An idle connection the server dropped (a restart) is found and replaced
            # at checkout instead of failing the caller's statement.
            check=AsyncConnectionPool.check_connection,
            configure=_create_temp_tables,
            # The pool's own retries back off exponentially (1, 2, 4 ... s): after a
            # minute-long outage it would find the server back only a minute later.
            # Giving up at once instead lets the next caller start a fresh attempt, so
            # reconnection follows demand (the committer retries every 2 s at most).
            reconnect_timeout=self._connect_timeout,
            name="lastseen",
        )
        await pool.open(wait=False)
        self._pool = pool

    async def _connect(self) -> Conn:
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await psycopg.AsyncConnection.connect(self._dsn, **self._conn_kwargs)
        except TimeoutError as exc:
            raise StoreUnavailable(
                f"PostgreSQL store {self._where} is unavailable: no connection within "
                f"{self._connect_timeout:g} s"
            ) from exc
        except (psycopg.Error, OSError) as exc:
            raise self._error(exc) from exc

    async def close(self) -> None:
        """Close every connection. Idempotent."""
        pool, self._pool = self._pool, None
        holder, self._holder = self._holder, None
        if holder is not None:
            with contextlib.suppress(psycopg.Error):
                await holder.close()
        if pool is not None:
            await pool.close()

    # --- plumbing ---------------------------------------------------------------------

    def _error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, PoolTimeout | TimeoutError | psycopg.OperationalError | OSError):
            return StoreUnavailable(f"PostgreSQL store {self._where} is unavailable: {exc}")
        return StoreError(f"PostgreSQL store {self._where}: {exc}")

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        pool = self._pool
        if pool is None:
            raise StoreError(f"the PostgreSQL store {self._where} is not open")
        try:
            async with pool.connection(timeout=self._connect_timeout) as conn:
                yield conn
        except (psycopg.Error, PoolTimeout, TimeoutError, OSError) as exc:
            raise self._error(exc) from exc

    async def _call(
        self, job: Callable[[Conn], Awaitable[T]], *, timeout: float | None = None
    ) -> T:
        """Run ``job`` on a pooled connection within the query timeout; errors typed."""
        try:
            async with asyncio.timeout(timeout or self._query_timeout):
                async with self._connection() as conn:
                    return await job(conn)
        except TimeoutError as exc:
            raise StoreUnavailable(
                f"PostgreSQL store {self._where} is unavailable: no answer within "
                f"{timeout or self._query_timeout:g} s"
            ) from exc

    async def _fetch(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        async def job(conn: Conn) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

        return await self._call(job)

    # --- devices and events -----------------------------------------------------------

    async def apply(self, batch: Batch) -> None:
        """Apply ``batch`` in one transaction: seen rows, upserts, presence, deletes,
        events.

        Raises ``StoreError`` and changes nothing if (outside ``idempotent``) an
        event's seq is not greater than every seq stored before it.
        """
        if not batch:
            return
        idempotent = batch.idempotent
        # Encode before taking a connection: the transaction holds locks only for SQL.
        upserts = rows.device_rows(rows.latest(batch.upserts, idempotent=idempotent))
        presence = rows.presence_rows(rows.presence_updates(batch))
        if batch.presence_columns:
            presence += rows.presence_column_rows(batch.presence_columns)
        seen = rows.seen(batch)
        events = batch.events
        event_rows = rows.event_rows(events)

        async def job(conn: Conn) -> None:
            async with conn.transaction():
                if events and not idempotent:
                    cursor = await conn.execute(
                        "SELECT value FROM meta WHERE key = 'last_seq' FOR UPDATE"
                    )
                    _check_seqs(events, (await cursor.fetchone() or (0,))[0])
                # First, so that any fuller write of the same device in this batch wins.
                if seen:
                    await _copy(conn, rows.COPY_SEEN, seen)
                    await conn.execute(rows.SEEN_UPDATE_NEWER if idempotent else rows.SEEN_UPDATE)
                if upserts:
                    await _copy(conn, rows.COPY_DEVICES, upserts)
                    await conn.execute(rows.UPSERT_NEWER if idempotent else rows.UPSERT)
                if presence:
                    await _copy(conn, rows.COPY_PRESENCE, presence)
                    sql = rows.PRESENCE_UPDATE_NEWER if idempotent else rows.PRESENCE_UPDATE
                    await conn.execute(sql)
                if batch.deletes:
                    await conn.execute(rows.DELETE, (list(batch.deletes),))
                if not events:
                    return
                if idempotent:
                    await _copy(conn, rows.COPY_EVENTS_IN, event_rows)
                    await conn.execute(rows.EVENT_MERGE)
                    await conn.execute(
                        "UPDATE meta SET value = GREATEST(value, %s) WHERE key = 'last_seq'",
                        (max(e.seq for e in events),),
                    )
                else:
                    # Checked above under the last_seq lock: these seqs cannot conflict.
                    await _copy(conn, rows.COPY_EVENTS, event_rows)
                    await conn.execute(
                        "UPDATE meta SET value = %s WHERE key = 'last_seq'", (events[-1].seq,)
                    )

        await self._call(job)

    async def load_devices(self) -> list[DeviceRecord]:
        """Every device, in no particular order.

        Bounded by ``load_timeout``, not ``query_timeout``: a million devices take
        tens of seconds to read and decode, and a start-up must not give up on them.
        """

        async def job(conn: Conn) -> list[DeviceRecord]:
            cursor = await conn.execute(rows.DEVICE_SELECT)
            found = await cursor.fetchall()
            # As in SQLiteStore: millions of new acyclic containers would make the
            # cyclic collector rescan a growing heap again and again.
            was_enabled = gc.isenabled()
            gc.disable()
            try:
                return [rows.device(row) for row in found]
            finally:
                if was_enabled:
                    gc.enable()

        return await self._call(job, timeout=self._load_timeout)

    async def device_rows(self) -> AsyncIterator[list[DeviceRow]]:
        """Every device's stored columns (``DeviceRow``), in batches of at most
        ``DEVICE_ROWS_BATCH`` read in id order, each one query on a pooled connection
        bounded by ``load_timeout`` (no connection is held between batches)."""
        after: str | None = None
        while True:
            page = await self._device_page(after)
            if not page:
                return
            yield page
            if len(page) < DEVICE_ROWS_BATCH:
                return
            after = page[-1][0]

    async def _device_page(self, after: str | None) -> list[DeviceRow]:
        async def job(conn: Conn) -> list[DeviceRow]:
            if after is None:
                cursor = await conn.execute(rows.DEVICE_ROWS_FIRST, (DEVICE_ROWS_BATCH,))
            else:
                cursor = await conn.execute(rows.DEVICE_ROWS_NEXT, (after, DEVICE_ROWS_BATCH))
            return list(await cursor.fetchall())

        return await self._call(job, timeout=self._load_timeout)

    async def get_device(self, device_id: str) -> DeviceRecord | None:
        found = await self._fetch(f"{rows.DEVICE_SELECT} WHERE id = %s", (device_id,))
        return rows.device(found[0]) if found else None

    async def list_devices(self, query: DeviceQuery) -> list[DeviceRecord]:
        """Devices matching every filter of ``query`` with id > ``query.after``, by id."""
        if query.limit <= 0:
            return []
        where: list[str] = []
        params: list[object] = []
        if query.status is not None:
            where.append("status = %s")
            params.append(query.status.value)
        if query.profile is not None:
            where.append("profile = %s")
            params.append(query.profile)
        if query.label is not None:
            # Containment uses the GIN index; the key is data, never path syntax.
            where.append("labels @> jsonb_build_object(%s::text, %s::text)")
            params += list(query.label)
        if query.after is not None:
            where.append("id > %s")
            params.append(query.after)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        params.append(query.limit)
        sql = f"{rows.DEVICE_SELECT}{clause} ORDER BY id LIMIT %s"
        return [rows.device(row) for row in await self._fetch(sql, params)]

    async def events(
        self, after: int, limit: int, device_id: str | None = None
    ) -> list[EventRecord]:
        """Events with seq > ``after`` (of one device, if given) in seq order."""
        if limit <= 0:
            return []
        if device_id is None:
            sql = f"{rows.EVENT_SELECT} WHERE seq > %s ORDER BY seq LIMIT %s"
            params: tuple[object, ...] = (after, limit)
        else:
            sql = f"{rows.EVENT_SELECT} WHERE device_id = %s AND seq > %s ORDER BY seq LIMIT %s"
            params = (device_id, after, limit)
        return [rows.event(row) for row in await self._fetch(sql, params)]

    async def last_seq(self) -> int:
        """The highest seq ever stored (0 if none); pruning and deletes never lower it."""
        found = await self._fetch("SELECT value FROM meta WHERE key = 'last_seq'")
        return int(found[0][0])

    async def first_seq(self) -> int:
        """The lowest seq still retained, or ``last_seq() + 1`` if none is."""
        # One statement, one snapshot: an apply cannot land between the two reads.
        found = await self._fetch(
            "SELECT (SELECT min(seq) FROM events), (SELECT value FROM meta WHERE key = 'last_seq')"
        )
        first, last = found[0]
        return int(last) + 1 if first is None else int(first)

    async def prune_events(self, before: float) -> int:
        """Delete events with ``at`` < ``before``; returns how many."""
        return await self._execute("DELETE FROM events WHERE at < %s", (before,))

    async def size_bytes(self) -> int:
        """Bytes of this store's tables with their indexes and TOAST."""
        found = await self._fetch(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.oid = ANY(ARRAY(SELECT to_regclass(t) FROM unnest(%s::text[]) AS t))",
            (list(_TABLES),),
        )
        return int(found[0][0])

    async def _execute(self, sql: str, params: Any) -> int:
        async def job(conn: Conn) -> int:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

        return await self._call(job)

    # --- keys -------------------------------------------------------------------------

    async def put_key(self, key: KeyRecord, *, only_if_none: bool = False) -> bool:
        """Insert ``key``; with ``only_if_none``, only into a store that has no key yet.

        The check and the insert share one transaction under an advisory lock: hubs
        bootstrapping the same fresh database create one key between them, not more.
        """

        async def job(conn: Conn) -> bool:
            try:
                async with conn.transaction():
                    if only_if_none:
                        await conn.execute(
                            "SELECT pg_advisory_xact_lock(%s)", (pgsession.KEYS_LOCK,)
                        )
                        cursor = await conn.execute("SELECT 1 FROM keys LIMIT 1")
                        if await cursor.fetchone():
                            return False
                    await conn.execute(rows.KEY_INSERT, rows.key_row(key))
                    await conn.execute(_BUMP_KEYS_VERSION)
            except pg_errors.UniqueViolation:
                if only_if_none:
                    return False
                raise Conflict(
                    f"a key with id {key.id!r} (or the same secret) already exists"
                ) from None
            return True

        return await self._call(job)

    async def revoke_key(self, key_id: str, at: float) -> KeyRecord | None:
        """Revoke at ``at`` unless already revoked; the stored key, or None if unknown."""

        async def job(conn: Conn) -> KeyRecord | None:
            async with conn.transaction():
                cursor = await conn.execute(
                    "UPDATE keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                    (at, key_id),
                )
                if cursor.rowcount:
                    await conn.execute(_BUMP_KEYS_VERSION)
                cursor = await conn.execute(f"{rows.KEY_SELECT} WHERE id = %s", (key_id,))
                row = await cursor.fetchone()
            return None if row is None else rows.key(row)

        return await self._call(job)

    async def load_keys(self) -> list[KeyRecord]:
        """Every key, revoked included, oldest first."""
        found = await self._fetch(f"{rows.KEY_SELECT} ORDER BY created_at, id")
        return [rows.key(row) for row in found]

    async def keys_version(self) -> int:
        """Bumped in the same transaction as every key change."""
        found = await self._fetch("SELECT value FROM meta WHERE key = 'keys_version'")
        return int(found[0][0])

    # --- audit ------------------------------------------------------------------------

    async def append_audit(self, record: AuditRecord) -> int:
        """Append one record; returns its id."""
        params = (
            record.at,
            record.actor,
            record.action,
            record.target,
            record.source,
            rows.dumps(record.details),
        )
        found = await self._fetch(rows.AUDIT_INSERT, params)
        return int(found[0][0])

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
        sql = f"{rows.AUDIT_SELECT} WHERE id > %s AND id < %s ORDER BY id {order} LIMIT %s"
        params = (after, 2**63 - 1 if before is None else before, limit)
        return [rows.audit(row) for row in await self._fetch(sql, params)]

    async def prune_audit(self, before: float) -> int:
        """Delete audit records with ``at`` < ``before``; returns how many."""
        return await self._execute("DELETE FROM audit WHERE at < %s", (before,))


async def _copy(conn: Conn, sql: str, data: list[tuple[Any, ...]]) -> None:
    async with conn.cursor().copy(sql) as copy:
        for row in data:
            await copy.write_row(row)


async def _create_temp_tables(conn: Conn) -> None:
    await conn.execute(rows.TEMP_TABLES, prepare=False)


_BUMP_KEYS_VERSION: Final = "UPDATE meta SET value = value + 1 WHERE key = 'keys_version'"


def _check_seqs(events: Any, last_seq: int) -> None:
    previous = last_seq
    for event in events:
        if event.seq <= previous:
            raise StoreError(
                f"event seq {event.seq} (device {event.device_id!r}) is not greater than "
                f"{previous}: seqs must strictly increase; the batch was not applied"
            )
        previous = event.seq
