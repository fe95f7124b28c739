"""``NotifyStore`` on SQLite: its own database file beside the hub's (embedded mode).

One connection on one worker thread: every method is one job on it, so statements
never contend inside the process and each method is one transaction. The schema is
versioned like the hub store's (``PRAGMA user_version``), with append-only steps.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import orjson

from lastseen.errors import StoreError
from lastseen.notify.codec import filter_from, filter_json, rule_from, rule_json
from lastseen.notify.models import (
    Alert,
    AlertKind,
    AlertRule,
    AlertState,
    Attempt,
    Delivery,
    DeliveryStatus,
    Format,
    NewDelivery,
    Subscription,
)
from lastseen.notify.policy import Decision
from lastseen.notify.store import CLAIM_OVERSCAN, AlertDeliveries, busy, pick

T = TypeVar("T")

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE subscriptions (
            id          TEXT PRIMARY KEY NOT NULL,
            url         TEXT NOT NULL,
            secret      TEXT NOT NULL,
            filter      TEXT NOT NULL,
            headers     TEXT NOT NULL,
            format      TEXT NOT NULL,
            description TEXT NOT NULL,
            enabled     INTEGER NOT NULL,
            created_at  REAL NOT NULL,
            updated_at  REAL NOT NULL
        );
        CREATE TABLE deliveries (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            subscription_id  TEXT NOT NULL,
            event_id         TEXT NOT NULL,
            device_id        TEXT NOT NULL,
            body             BLOB NOT NULL,
            status           TEXT NOT NULL,
            attempts         INTEGER NOT NULL DEFAULT 0,
            created_at       REAL NOT NULL,
            next_at          REAL NOT NULL,
            lease_until      REAL,
            last_status      INTEGER,
            last_error       TEXT,
            last_response    TEXT,
            delivered_at     REAL,
            UNIQUE (subscription_id, event_id)
        );
        CREATE INDEX deliveries_due ON deliveries (status, next_at);
        CREATE INDEX deliveries_order ON deliveries (subscription_id, device_id, id);
        CREATE TABLE rules (
            name  TEXT PRIMARY KEY NOT NULL,
            body  TEXT NOT NULL
        );
        CREATE TABLE alerts (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            key          TEXT NOT NULL UNIQUE,
            rule         TEXT NOT NULL,
            kind         TEXT NOT NULL,
            device_id    TEXT NOT NULL,
            state        TEXT NOT NULL,
            opened_at    REAL NOT NULL,
            resolved_at  REAL,
            reason       TEXT NOT NULL
        );
        CREATE INDEX alerts_state ON alerts (state, id);
        CREATE TABLE notify_meta (key TEXT PRIMARY KEY NOT NULL, value);
        INSERT INTO notify_meta (key, value) VALUES ('cursor', 0);
        """,
    ),
]

DELIVERY_COLUMNS = (
    "id, subscription_id, event_id, device_id, body, status, attempts, created_at, next_at, "
    "lease_until, last_status, last_error, last_response, delivered_at"
)
ALERT_COLUMNS = "id, key, rule, kind, device_id, state, opened_at, resolved_at, reason"
SUBSCRIPTION_COLUMNS = (
    "id, url, secret, filter, headers, format, description, enabled, created_at, updated_at"
)


def subscription_row(s: Subscription) -> tuple[Any, ...]:
    return (
        s.id,
        s.url,
        s.secret,
        orjson.dumps(filter_json(s.filter)).decode(),
        orjson.dumps(dict(s.headers)).decode(),
        s.format.value,
        s.description,
        bool(s.enabled),
        s.created_at,
        s.updated_at,
    )


def subscription_from(row: Sequence[Any]) -> Subscription:
    return Subscription(
        id=row[0],
        url=row[1],
        secret=row[2],
        filter=filter_from(orjson.loads(row[3])),
        headers=orjson.loads(row[4]),
        format=Format(row[5]),
        description=row[6],
        enabled=bool(row[7]),
        created_at=row[8],
        updated_at=row[9],
    )


def delivery_from(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        subscription_id=row[1],
        event_id=row[2],
        device_id=row[3],
        body=bytes(row[4]),
        status=DeliveryStatus(row[5]),
        attempts=row[6],
        created_at=row[7],
        next_at=row[8],
        lease_until=row[9],
        last_status=row[10],
        last_error=row[11],
        last_response=row[12],
        delivered_at=row[13],
    )


def alert_from(row: Sequence[Any]) -> Alert:
    return Alert(
        id=row[0],
        key=row[1],
        rule=row[2],
        kind=AlertKind(row[3]),
        device_id=row[4],
        state=AlertState(row[5]),
        opened_at=row[6],
        resolved_at=row[7],
        reason=row[8],
    )


def alert_row(a: Alert) -> tuple[Any, ...]:
    return (a.key, a.rule, a.kind.value, a.device_id, a.state.value, a.opened_at, a.resolved_at,
            a.reason)  # fmt: skip


def finish_values(attempt: Attempt, decision: Decision) -> tuple[Any, ...]:
    """``status, next_at, lease_until, last_status, last_error, last_response,
    delivered_at`` after an attempt."""
    delivered = (
        attempt.at + attempt.duration if decision.status is DeliveryStatus.DELIVERED else None
    )
    return (
        decision.status.value,
        decision.next_at if decision.next_at is not None else attempt.at,
        None,
        attempt.status,
        attempt.error,
        attempt.response,
        delivered,
    )


class SQLiteNotifyStore:
    """The embedded ``NotifyStore``; ``path`` may be ``:memory:`` (tests)."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._pool: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lastseen-notify-sqlite")
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._connect)
        except sqlite3.Error as exc:
            await self.close()
            raise StoreError(f"notification store {self._path}: {exc}") from exc
        except StoreError:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        conn = self._conn
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(pool, conn.close)
        pool.shutdown(wait=True)
        self._conn = None

    def _connect(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        latest = MIGRATIONS[-1][0]
        if version > latest:
            raise StoreError(f"{self._path}: notification schema {version} is newer than {latest}")
        for step, script in MIGRATIONS:
            if step > version:
                conn.executescript(
                    f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {step}; COMMIT;"
                )
        self._conn = conn

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._pool is None:
            raise StoreError("notification store is not open")

        def call() -> T:
            conn = self._conn
            if conn is None:  # pragma: no cover - open() failed
                raise StoreError("notification store is not open")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = job(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise StoreError(f"notification store: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    # ------------------------------------------------------------------ subscriptions

    async def put_subscription(self, subscription: Subscription) -> None:
        row = subscription_row(subscription)
        await self._run(
            lambda c: c.execute(
                f"INSERT OR REPLACE INTO subscriptions ({SUBSCRIPTION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        def job(c: sqlite3.Connection) -> Subscription | None:
            row = c.execute(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = ?", (subscription_id,)
            ).fetchone()
            return subscription_from(row) if row else None

        return await self._run(job)

    async def list_subscriptions(self) -> list[Subscription]:
        def job(c: sqlite3.Connection) -> list[Subscription]:
            rows = c.execute(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions ORDER BY created_at, id"
            )
            return [subscription_from(r) for r in rows]

        return await self._run(job)

    async def delete_subscription(self, subscription_id: str) -> bool:
        def job(c: sqlite3.Connection) -> bool:
            c.execute("DELETE FROM deliveries WHERE subscription_id = ?", (subscription_id,))
            return (
                c.execute("DELETE FROM subscriptions WHERE id = ?", (subscription_id,)).rowcount > 0
            )

        return await self._run(job)

    # ------------------------------------------------------------------ queue

    async def enqueue(self, deliveries: Sequence[NewDelivery], cursor: int | None) -> int:
        def job(c: sqlite3.Connection) -> int:
            added = _insert_deliveries(c, deliveries)
            if cursor is not None:
                c.execute(
                    "UPDATE notify_meta SET value = max(value, ?) WHERE key = 'cursor'", (cursor,)
                )
            return added

        return await self._run(job)

    async def cursor(self) -> int:
        def job(c: sqlite3.Connection) -> int:
            (value,) = c.execute("SELECT value FROM notify_meta WHERE key = 'cursor'").fetchone()
            return int(value)

        return await self._run(job)

    async def claim(
        self, now: float, limit: int, lease: float, in_flight: Mapping[str, int], per_sub: int
    ) -> list[Delivery]:
        skip = list(busy(in_flight, per_sub))

        def job(c: sqlite3.Connection) -> list[Delivery]:
            marks = ", ".join("?" * len(skip))
            not_busy = f"AND d.subscription_id NOT IN ({marks})" if skip else ""
            rows = c.execute(
                f"SELECT {', '.join('d.' + col.strip() for col in DELIVERY_COLUMNS.split(','))} "
                "FROM deliveries d WHERE ((d.status = 'pending' AND d.next_at <= ?) "
                "OR (d.status = 'sending' AND d.lease_until <= ?)) "
                f"{not_busy} AND NOT EXISTS (SELECT 1 FROM deliveries p "
                "WHERE p.subscription_id = d.subscription_id AND p.device_id = d.device_id "
                "AND p.id < d.id AND p.status IN ('pending', 'sending')) "
                "ORDER BY d.next_at, d.id LIMIT ?",
                (now, now, *skip, limit * CLAIM_OVERSCAN),
            ).fetchall()
            chosen = pick([delivery_from(r) for r in rows], limit, in_flight, per_sub)
            out = []
            for d in chosen:
                c.execute(
                    "UPDATE deliveries SET status = 'sending', lease_until = ?, "
                    "attempts = attempts + 1 WHERE id = ?",
                    (now + lease, d.id),
                )
                out.append(_claimed(d, now + lease))
            return out

        return await self._run(job)

    async def finish(self, delivery: Delivery, attempt: Attempt, decision: Decision) -> bool:
        values = finish_values(attempt, decision)

        def job(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE deliveries SET status = ?, next_at = ?, lease_until = ?, last_status = ?, "
                "last_error = ?, last_response = ?, delivered_at = ? "
                "WHERE id = ? AND status = 'sending' AND attempts = ?",
                (*values, delivery.id, delivery.attempts),
            )
            return cur.rowcount > 0

        return await self._run(job)

    async def release(self, delivery: Delivery) -> bool:
        def job(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE deliveries SET status = 'pending', lease_until = NULL, "
                "attempts = attempts - 1 WHERE id = ? AND status = 'sending' AND attempts = ?",
                (delivery.id, delivery.attempts),
            )
            return cur.rowcount > 0

        return await self._run(job)

    async def deliveries(
        self, subscription_id: str, status: DeliveryStatus | None, limit: int
    ) -> list[Delivery]:
        def job(c: sqlite3.Connection) -> list[Delivery]:
            sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE subscription_id = ?"
            args: list[Any] = [subscription_id]
            if status is not None:
                sql += " AND status = ?"
                args.append(status.value)
            rows = c.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
            return [delivery_from(r) for r in rows]

        return await self._run(job)

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        def job(c: sqlite3.Connection) -> Delivery | None:
            row = c.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            return delivery_from(row) if row else None

        return await self._run(job)

    async def replay(self, subscription_id: str, delivery_id: int | None, now: float) -> int:
        def job(c: sqlite3.Connection) -> int:
            sql = (
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = ?, "
                "created_at = ?, lease_until = NULL, delivered_at = NULL WHERE subscription_id = ?"
            )
            if delivery_id is None:
                cur = c.execute(sql + " AND status = 'dead'", (now, now, subscription_id))
            else:
                cur = c.execute(
                    sql + " AND id = ? AND status IN ('dead', 'delivered')",
                    (now, now, subscription_id, delivery_id),
                )
            return cur.rowcount

        return await self._run(job)

    async def next_due(self) -> float | None:
        def job(c: sqlite3.Connection) -> float | None:
            (pending,) = c.execute(
                "SELECT min(next_at) FROM deliveries WHERE status = 'pending'"
            ).fetchone()
            (lapsing,) = c.execute(
                "SELECT min(lease_until) FROM deliveries WHERE status = 'sending'"
            ).fetchone()
            times = [t for t in (pending, lapsing) if t is not None]
            return min(times) if times else None

        return await self._run(job)

    async def counts(self) -> dict[DeliveryStatus, int]:
        def job(c: sqlite3.Connection) -> dict[DeliveryStatus, int]:
            rows = c.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
            found = {DeliveryStatus(s): n for s, n in rows}
            return {s: found.get(s, 0) for s in DeliveryStatus}

        return await self._run(job)

    async def prune(self, delivered_before: float) -> int:
        def job(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "DELETE FROM deliveries WHERE status = 'delivered' AND delivered_at < ?",
                (delivered_before,),
            )
            return cur.rowcount

        return await self._run(job)

    # ------------------------------------------------------------------ rules and alerts

    async def put_rule(self, rule: AlertRule) -> None:
        body = orjson.dumps(rule_json(rule)).decode()
        await self._run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO rules (name, body) VALUES (?, ?)", (rule.name, body)
            )
        )

    async def delete_rule(self, name: str) -> bool:
        return await self._run(
            lambda c: c.execute("DELETE FROM rules WHERE name = ?", (name,)).rowcount > 0
        )

    async def list_rules(self) -> list[AlertRule]:
        def job(c: sqlite3.Connection) -> list[AlertRule]:
            return [
                rule_from(orjson.loads(b))
                for (b,) in c.execute("SELECT body FROM rules ORDER BY name")
            ]

        return await self._run(job)

    async def open_alert(self, alert: Alert, deliveries: AlertDeliveries = None) -> Alert | None:
        def job(c: sqlite3.Connection) -> Alert | None:
            cur = c.execute(
                "INSERT OR IGNORE INTO alerts (key, rule, kind, device_id, state, opened_at, "
                "resolved_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                alert_row(alert),
            )
            if cur.rowcount == 0:
                return None
            return _stored_alert(c, alert.key, deliveries)

        return await self._run(job)

    async def resolve_alert(self, alert: Alert, deliveries: AlertDeliveries = None) -> Alert | None:
        if alert.state is AlertState.RESOLVED and alert.opened_at == alert.resolved_at:
            return await self.open_alert(alert, deliveries)

        def job(c: sqlite3.Connection) -> Alert | None:
            cur = c.execute(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?, reason = ? "
                "WHERE key = ? AND state = 'open'",
                (alert.resolved_at, alert.reason, alert.key),
            )
            if cur.rowcount == 0:
                return None
            return _stored_alert(c, alert.key, deliveries)

        return await self._run(job)

    async def alerts(self, state: AlertState | None, limit: int) -> list[Alert]:
        def job(c: sqlite3.Connection) -> list[Alert]:
            if state is None:
                rows = c.execute(
                    f"SELECT {ALERT_COLUMNS} FROM alerts ORDER BY id DESC LIMIT ?", (limit,)
                )
            else:
                rows = c.execute(
                    f"SELECT {ALERT_COLUMNS} FROM alerts WHERE state = ? ORDER BY id DESC LIMIT ?",
                    (state.value, limit),
                )
            return [alert_from(r) for r in rows]

        return await self._run(job)

    async def open_alerts(self) -> list[Alert]:
        def job(c: sqlite3.Connection) -> list[Alert]:
            rows = c.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'open' ORDER BY id")
            return [alert_from(r) for r in rows]

        return await self._run(job)


def _insert_deliveries(c: sqlite3.Connection, deliveries: Sequence[NewDelivery]) -> int:
    """Enqueue, ignoring what is already queued; how many rows were added."""
    before = c.total_changes
    c.executemany(
        "INSERT OR IGNORE INTO deliveries (subscription_id, event_id, device_id, body, "
        "status, created_at, next_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (d.subscription_id, d.event_id, d.device_id, d.body, DeliveryStatus.PENDING.value,
             d.created_at, d.created_at)
            for d in deliveries
        ],
    )  # fmt: skip
    return c.total_changes - before


def _stored_alert(c: sqlite3.Connection, key: str, deliveries: AlertDeliveries) -> Alert:
    """The alert just written, with its deliveries enqueued in the same transaction."""
    stored = alert_from(
        c.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE key = ?", (key,)).fetchone()
    )
    if deliveries is not None:
        _insert_deliveries(c, deliveries(stored))
    return stored


def _claimed(d: Delivery, lease_until: float) -> Delivery:
    return replace(
        d, status=DeliveryStatus.SENDING, attempts=d.attempts + 1, lease_until=lease_until
    )
