"""Rows of the PostgreSQL store: the SQL it runs and how records become rows.

Bulk writes go through ``COPY``: each connection has four temporary tables
(``TEMP_TABLES``, created once per connection, emptied at every commit); a batch is
copied into them and merged into the real tables with one statement per kind
(``INSERT ... SELECT ... ON CONFLICT``, ``UPDATE ... FROM``). ``COPY`` is encoded in C
by psycopg and parsed in bulk by the server: measured against one ``unnest`` of
per-column arrays, it halved the time of 10 000 transitions (psycopg dumps array
parameters element by element in Python). Events of a plain batch, which cannot
conflict, are copied straight into ``events``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

from lastseen.errors import StoreError
from lastseen.presence import DeviceState
from lastseen.store import rows
from lastseen.store.base import DeviceRecord, EventRecord, PresenceColumns, PresenceUpdate
from lastseen.store.rows import audit as audit
from lastseen.store.rows import event as event
from lastseen.store.rows import key as key
from lastseen.store.rows import key_row as key_row
from lastseen.store.rows import latest as latest
from lastseen.store.rows import presence_updates as presence_updates
from lastseen.store.rows import seen as seen

_PRESENCE: Final = (
    "status, since, last_seen, last_own, anchor, reason, source, session, flaps, flapping, version"
)
_DEVICE: Final = (
    f"id, profile, labels, attributes, metrics, {_PRESENCE.replace(', version', '')}, "
    "created_at, updated_at, version"
)
_EVENT: Final = "seq, device_id, from_status, to_status, at, reason, source, flapping"

#: Run once on every new connection of the pool.
TEMP_TABLES: Final = """
CREATE TEMP TABLE IF NOT EXISTS devices_in (
    id text COLLATE "C", profile text, labels jsonb, attributes text, metrics text,
    status text, since float8, last_seen float8, last_own float8, anchor float8,
    reason text, source text, session int8, flaps float8[], flapping boolean,
    created_at float8, updated_at float8, version int8
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS presence_in (
    id text COLLATE "C", status text, since float8, last_seen float8, last_own float8,
    anchor float8, reason text, source text, session int8, flaps float8[],
    flapping boolean, version int8
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS events_in (LIKE events) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS seen_in (
    id text COLLATE "C", last_seen float8, last_own float8, anchor float8
) ON COMMIT DELETE ROWS;
"""

# --- devices ----------------------------------------------------------------------

DEVICE_SELECT: Final = (
    "SELECT id, profile, labels::text, attributes, metrics, status, since, last_seen, "
    "last_own, anchor, reason, source, session, flaps, flapping, created_at, updated_at, "
    "version FROM devices"
)

# ``DeviceRow``: codes and NULLs where they spare a new object per row (an empty JSON
# map or flaps array, the status, reason and source strings); read a page at a time
# in id order (the primary key), so no connection is held between pages.
_DEVICE_ROWS: Final = (
    "SELECT id, profile, NULLIF(labels, '{}'::jsonb)::text, NULLIF(attributes, '{}'), "
    f"NULLIF(metrics, '{{}}'), {rows.STATUS_CODE}, since, last_seen, last_own, anchor, "
    f"{rows.REASON_CODE}, {rows.SOURCE_CODE}, session, "
    "CASE WHEN cardinality(flaps) > 1 THEN flaps END, "
    "CASE WHEN cardinality(flaps) = 1 THEN flaps[1] END, "
    "flapping::int, created_at, updated_at FROM devices"
)
DEVICE_ROWS_FIRST: Final = f"{_DEVICE_ROWS} ORDER BY id LIMIT %s"
DEVICE_ROWS_NEXT: Final = f"{_DEVICE_ROWS} WHERE id > %s ORDER BY id LIMIT %s"

COPY_DEVICES: Final = f"COPY devices_in ({_DEVICE}) FROM STDIN"
_UPSERT_BASE: Final = (
    f"INSERT INTO devices AS d ({_DEVICE}) SELECT {_DEVICE} FROM devices_in "
    "ON CONFLICT (id) DO UPDATE SET "
    # created_at is the first registration; an update never moves it.
    + ", ".join(
        f"{n} = excluded.{n}"
        for n in (c.strip() for c in _DEVICE.split(","))
        if n not in ("id", "created_at")
    )
)
UPSERT: Final = _UPSERT_BASE
#: An idempotent batch moves a stored device only forwards (see ``Batch.idempotent``).
UPSERT_NEWER: Final = f"{_UPSERT_BASE} WHERE excluded.version > d.version"

COPY_PRESENCE: Final = f"COPY presence_in (id, {_PRESENCE}) FROM STDIN"
_PRESENCE_BASE: Final = (
    "UPDATE devices AS d SET "
    + ", ".join(f"{n} = u.{n}" for n in (c.strip() for c in _PRESENCE.split(",")))
    + " FROM presence_in AS u WHERE d.id = u.id"
)
PRESENCE_UPDATE: Final = _PRESENCE_BASE
PRESENCE_UPDATE_NEWER: Final = f"{_PRESENCE_BASE} AND d.version < u.version"

#: ``SeenRow``s: copied as they are (a NaN time is a float8 NaN), read back as NULL.
COPY_SEEN: Final = "COPY seen_in (id, last_seen, last_own, anchor) FROM STDIN"
_SEEN_BASE: Final = (
    "UPDATE devices AS d SET "
    + ", ".join(f"{n} = NULLIF(u.{n}, 'NaN')" for n in ("last_seen", "last_own", "anchor"))
    + " FROM seen_in AS u WHERE d.id = u.id"
)
SEEN_UPDATE: Final = _SEEN_BASE
#: An idempotent batch moves the times only forwards (see ``Batch.idempotent``).
SEEN_UPDATE_NEWER: Final = (
    f"{_SEEN_BASE} AND (d.last_seen IS NULL OR d.last_seen < NULLIF(u.last_seen, 'NaN'))"
)

DELETE: Final = "DELETE FROM devices WHERE id = ANY(%s::text[])"


def _json_default(value: object) -> object:
    # orjson serialises dict but not other Mappings (MappingProxyType, frozen maps).
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: object) -> str:
    """JSON text; ``StoreError`` for what JSON cannot hold."""
    try:
        return orjson.dumps(value, default=_json_default).decode()
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise StoreError(f"cannot encode as JSON: {exc}") from exc


def _flaps(flaps: tuple[float, ...]) -> str:
    # A PostgreSQL array literal; repr() is the shortest text that reads back exactly.
    return "{" + ",".join(repr(float(f)) for f in flaps) + "}"


def device_rows(records: Iterable[DeviceRecord]) -> list[tuple[Any, ...]]:
    """Rows for ``COPY_DEVICES``."""
    return [
        (
            r.id,
            r.profile,
            dumps(r.labels) if r.labels else "{}",
            dumps(r.attributes) if r.attributes else "{}",
            dumps(r.metrics) if r.metrics else "{}",
            *_presence(r.state),
            r.created_at,
            r.updated_at,
            r.version,
        )
        for r in records
    ]


def presence_rows(updates: Iterable[PresenceUpdate]) -> list[tuple[Any, ...]]:
    """Rows for ``COPY_PRESENCE``."""
    return [(u.id, *_presence(u.state), u.version) for u in updates]


def presence_column_rows(c: PresenceColumns) -> list[tuple[Any, ...]]:
    """``presence_rows`` for each position of ``c``, a column at a time."""
    status, reason, source = rows.presence_codes(c)
    return list(
        zip(
            c.ids,
            status,
            c.since,
            c.last_seen,
            c.last_own,
            c.anchor,
            reason,
            source,
            c.session,
            [_flaps(f) for f in c.flaps],
            c.flapping,
            itertools.repeat(0),
            strict=False,  # the version column is endless
        )
    )


def _presence(s: DeviceState) -> tuple[Any, ...]:
    return (
        s.status.value,
        s.since,
        s.last_seen,
        s.last_own,
        s.anchor,
        None if s.reason is None else s.reason.value,
        None if s.source is None else s.source.value,
        s.session,
        _flaps(s.flaps),
        s.flapping,
    )


def device(row: Any) -> DeviceRecord:
    return rows.device(row, tuple)


# --- events -----------------------------------------------------------------------

EVENT_SELECT: Final = f"SELECT {_EVENT} FROM events"
COPY_EVENTS: Final = f"COPY events ({_EVENT}) FROM STDIN"
COPY_EVENTS_IN: Final = f"COPY events_in ({_EVENT}) FROM STDIN"
#: At least once: a seq already stored is a replay, skipped.
EVENT_MERGE: Final = (
    f"INSERT INTO events ({_EVENT}) SELECT {_EVENT} FROM events_in ON CONFLICT (seq) DO NOTHING"
)


def event_rows(events: Iterable[EventRecord]) -> list[tuple[Any, ...]]:
    return [
        (
            e.seq,
            e.device_id,
            e.transition.from_status.value,
            e.transition.to_status.value,
            e.transition.at,
            e.transition.reason.value,
            e.transition.source.value,
            e.transition.flapping,
        )
        for e in events
    ]


# --- keys and audit ---------------------------------------------------------------

_KEY_COLUMNS: Final = (
    "id, role, name, digest, device_id, max_per_minute, created_at, created_by, revoked_at"
)
KEY_SELECT: Final = f"SELECT {_KEY_COLUMNS} FROM keys"
KEY_INSERT: Final = f"INSERT INTO keys ({_KEY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
AUDIT_SELECT: Final = "SELECT id, at, actor, action, target, source, details FROM audit"
AUDIT_INSERT: Final = (
    "INSERT INTO audit (at, actor, action, target, source, details) "
    "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id"
)
