"""Rows of the PostgreSQL store: the SQL it runs and how records become parameters.

Bulk writes send one array per column and let ``unnest`` turn them back into rows:
one statement and one round trip for any number of rows, with no per-row parsing or
planning (``executemany`` would be one server round trip per row in the worst case;
10 000 transitions commit in tens of milliseconds this way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import orjson

from lastseen.errors import StoreError
from lastseen.presence import DeviceState, Reason, Source, Status, Transition
from lastseen.store.base import AuditRecord, DeviceRecord, EventRecord, KeyRecord, PresenceUpdate

T = TypeVar("T", DeviceRecord, PresenceUpdate)

_STATUSES: Final = {s.value: s for s in Status}
_REASONS: Final = {r.value: r for r in Reason}
_SOURCES: Final = {s.value: s for s in Source}

# --- devices ----------------------------------------------------------------------

#: ``(column, array type)`` of a device row, in insert order.
_DEVICE_COLUMNS: Final = (
    ("id", "text"),
    ("profile", "text"),
    ("labels", "text"),
    ("attributes", "text"),
    ("metrics", "text"),
    ("status", "text"),
    ("since", "float8"),
    ("last_seen", "float8"),
    ("last_own", "float8"),
    ("anchor", "float8"),
    ("reason", "text"),
    ("source", "text"),
    ("session", "int8"),
    ("flaps", "text"),
    ("flapping", "bool"),
    ("created_at", "float8"),
    ("updated_at", "float8"),
    ("version", "int8"),
)
_NAMES: Final = [name for name, _ in _DEVICE_COLUMNS]
#: Casts from the text arrays to the column types.
_CASTS: Final = {"labels": "u.labels::jsonb", "flaps": "u.flaps::float8[]"}


def _unnest(columns: Sequence[tuple[str, str]]) -> str:
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
    return f"unnest({arrays}) AS u({', '.join(name for name, _ in columns)})"


DEVICE_SELECT: Final = (
    "SELECT id, profile, labels::text, attributes, metrics, status, since, last_seen, "
    "last_own, anchor, reason, source, session, flaps, flapping, created_at, updated_at, "
    "version FROM devices"
)

_UPSERT_BASE: Final = (
    f"INSERT INTO devices AS d ({', '.join(_NAMES)}) "
    f"SELECT {', '.join(_CASTS.get(n, 'u.' + n) for n in _NAMES)} FROM {_unnest(_DEVICE_COLUMNS)} "
    "ON CONFLICT (id) DO UPDATE SET "
    # created_at is the first registration; an update never moves it.
    + ", ".join(f"{n} = excluded.{n}" for n in _NAMES if n not in ("id", "created_at"))
)
UPSERT: Final = _UPSERT_BASE
#: An idempotent batch moves a stored device only forwards (see ``Batch.idempotent``).
UPSERT_NEWER: Final = f"{_UPSERT_BASE} WHERE excluded.version > d.version"

_PRESENCE_COLUMNS: Final = tuple(
    c
    for c in _DEVICE_COLUMNS
    if c[0] not in ("profile", "labels", "attributes", "metrics")
    and c[0] not in ("created_at", "updated_at")
)
_PRESENCE_BASE: Final = (
    "UPDATE devices AS d SET "
    + ", ".join(f"{n} = {_CASTS.get(n, 'u.' + n)}" for n, _ in _PRESENCE_COLUMNS if n != "id")
    + f" FROM {_unnest(_PRESENCE_COLUMNS)} WHERE d.id = u.id"
)
PRESENCE_UPDATE: Final = _PRESENCE_BASE
PRESENCE_UPDATE_NEWER: Final = f"{_PRESENCE_BASE} AND d.version < u.version"

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


def latest(items: Iterable[T], *, idempotent: bool) -> list[T]:
    """One write per id, in id order: the last one, or in an idempotent batch the one
    with the highest version (the first of equals, as applying them in turn would).

    One statement cannot update a row twice, and id order is one lock order for
    every writer, so two concurrent batches cannot deadlock on each other's rows.
    """
    chosen: dict[str, T] = {}
    for item in items:
        held = chosen.get(item.id)
        if held is None or not idempotent or item.version > held.version:
            chosen[item.id] = item
    return [chosen[key] for key in sorted(chosen)]


def device_arrays(records: Sequence[DeviceRecord]) -> list[list[Any]]:
    """One list per column of ``UPSERT``."""
    columns: list[list[Any]] = [[] for _ in _DEVICE_COLUMNS]
    for r in records:
        s = r.state
        row = (
            r.id,
            r.profile,
            dumps(r.labels) if r.labels else "{}",
            dumps(r.attributes) if r.attributes else "{}",
            dumps(r.metrics) if r.metrics else "{}",
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
            r.created_at,
            r.updated_at,
            r.version,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def presence_arrays(updates: Sequence[PresenceUpdate]) -> list[list[Any]]:
    """One list per column of ``PRESENCE_UPDATE``."""
    columns: list[list[Any]] = [[] for _ in _PRESENCE_COLUMNS]
    for u in updates:
        s = u.state
        row = (
            u.id,
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
            u.version,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def device(row: Any) -> DeviceRecord:
    (
        id_,
        profile,
        labels,
        attributes,
        metrics,
        status,
        since,
        last_seen,
        last_own,
        anchor,
        reason,
        source,
        session,
        flaps,
        flapping,
        created_at,
        updated_at,
        version,
    ) = row
    state = DeviceState(
        status=_STATUSES[status],
        since=since,
        last_seen=last_seen,
        last_own=last_own,
        anchor=anchor,
        reason=None if reason is None else _REASONS[reason],
        source=None if source is None else _SOURCES[source],
        session=session,
        flaps=tuple(flaps),
        flapping=flapping,
    )
    return DeviceRecord(
        id=id_,
        profile=profile,
        state=state,
        labels=orjson.loads(labels),
        attributes=orjson.loads(attributes),
        metrics=orjson.loads(metrics),
        created_at=created_at,
        updated_at=updated_at,
        version=version,
    )


# --- events -----------------------------------------------------------------------

_EVENT_COLUMNS: Final = (
    ("seq", "int8"),
    ("device_id", "text"),
    ("from_status", "text"),
    ("to_status", "text"),
    ("at", "float8"),
    ("reason", "text"),
    ("source", "text"),
    ("flapping", "bool"),
)
EVENT_SELECT: Final = (
    "SELECT seq, device_id, from_status, to_status, at, reason, source, flapping FROM events"
)
EVENT_INSERT: Final = (
    f"INSERT INTO events ({', '.join(n for n, _ in _EVENT_COLUMNS)}) "
    f"SELECT * FROM {_unnest(_EVENT_COLUMNS)}"
)
#: At least once: a seq already stored is a replay, skipped.
EVENT_INSERT_NEW: Final = f"{EVENT_INSERT} ON CONFLICT (seq) DO NOTHING"


def event_arrays(events: Sequence[EventRecord]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in _EVENT_COLUMNS]
    for e in events:
        t = e.transition
        row = (
            e.seq,
            e.device_id,
            t.from_status.value,
            t.to_status.value,
            t.at,
            t.reason.value,
            t.source.value,
            t.flapping,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def event(row: Any) -> EventRecord:
    seq, device_id, from_status, to_status, at, reason, source, flapping = row
    transition = Transition(
        from_status=_STATUSES[from_status],
        to_status=_STATUSES[to_status],
        at=at,
        reason=_REASONS[reason],
        source=_SOURCES[source],
        flapping=flapping,
    )
    return EventRecord(seq=seq, device_id=device_id, transition=transition)


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


def key_row(key: KeyRecord) -> tuple[object, ...]:
    return (
        key.id,
        key.role,
        key.name,
        key.digest,
        key.device_id,
        key.max_per_minute,
        key.created_at,
        key.created_by,
        key.revoked_at,
    )


def key(row: Any) -> KeyRecord:
    id_, role, name, digest, device_id, rate, created_at, created_by, revoked_at = row
    return KeyRecord(
        id=id_,
        role=role,
        name=name,
        digest=bytes(digest),
        device_id=device_id,
        max_per_minute=rate,
        created_at=created_at,
        created_by=created_by,
        revoked_at=revoked_at,
    )


def audit(row: Any) -> AuditRecord:
    id_, at, actor, action, target, source, details = row
    return AuditRecord(
        id=id_,
        at=at,
        actor=actor,
        action=action,
        target=target,
        source=source,
        details=orjson.loads(details),
    )
