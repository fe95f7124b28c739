"""Rows of the device, event, key and audit tables, the same on every SQL backend."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, Final, TypeVar

import orjson

from lastseen.presence import DeviceState, Reason, Source, Status, Transition
from lastseen.store.base import (
    AuditRecord,
    Batch,
    DeviceRecord,
    EventRecord,
    KeyRecord,
    PresenceColumns,
    PresenceUpdate,
    SeenRow,
)

T = TypeVar("T", DeviceRecord, PresenceUpdate)

#: Most rows in one batch of ``Store.device_rows``: the rows one round trip reads, and
#: the most a start-up holds as row objects at once.
DEVICE_ROWS_BATCH: Final = 50_000

_STATUSES: Final = {s.value: s for s in Status}
_REASONS: Final = {r.value: r for r in Reason}
_SOURCES: Final = {s.value: s for s in Source}


def code(column: str, values: type[StrEnum], *, nullable: bool = False) -> str:
    """SQL for ``column``'s stored value as its index in ``tuple(values)`` (declaration
    order, as ``DeviceRow`` promises): a small integer instead of a new string per row.
    With ``nullable``, NULL is -1. A value the enum does not know is NULL, which the
    loader refuses."""
    whens = " ".join(f"WHEN '{member.value}' THEN {i}" for i, member in enumerate(values))
    if nullable:
        return f"CASE {column} {whens} ELSE CASE WHEN {column} IS NULL THEN -1 END END"
    return f"CASE {column} {whens} END"


#: ``DeviceRow``'s status, reason and source columns (the same SQL on both backends).
STATUS_CODE: Final = code("status", Status)
REASON_CODE: Final = code("reason", Reason, nullable=True)
SOURCE_CODE: Final = code("source", Source, nullable=True)


def state(
    status: str,
    since: float,
    last_seen: float | None,
    last_own: float | None,
    anchor: float | None,
    reason: str | None,
    source: str | None,
    session: int | None,
    flaps: tuple[float, ...],
    flapping: bool,
) -> DeviceState:
    """A device's presence from its stored columns (flaps already decoded)."""
    return DeviceState(
        status=_STATUSES[status],
        since=since,
        last_seen=last_seen,
        last_own=last_own,
        anchor=anchor,
        reason=None if reason is None else _REASONS[reason],
        source=None if source is None else _SOURCES[source],
        session=session,
        flaps=flaps,
        flapping=flapping,
    )


def device(row: Any, flaps_of: Callable[[Any], tuple[float, ...]]) -> DeviceRecord:
    """A device from its stored row; ``flaps_of`` decodes the backend's flaps column
    (a JSON array in SQLite, a float array in PostgreSQL)."""
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
    return DeviceRecord(
        id=id_,
        profile=profile,
        state=state(
            status,
            since,
            last_seen,
            last_own,
            anchor,
            reason,
            source,
            session,
            flaps_of(flaps),
            bool(flapping),  # SQLite stores 0/1, PostgreSQL a boolean
        ),
        labels=orjson.loads(labels),
        attributes=orjson.loads(attributes),
        metrics=orjson.loads(metrics),
        created_at=created_at,
        updated_at=updated_at,
        version=version,
    )


def presence_codes(
    c: PresenceColumns,
) -> tuple[list[str], list[str | None], list[str | None]]:
    """The status, reason and source columns of ``c`` as the strings both SQL stores
    keep."""
    return (
        [s.value for s in c.status],
        [None if r is None else r.value for r in c.reason],
        [None if s is None else s.value for s in c.source],
    )


def latest(items: Iterable[T], *, idempotent: bool) -> list[T]:
    """One write per id (one statement cannot update a row twice): the last one, or in
    an idempotent batch the one with the highest version (the first of equals, as
    applying them in turn would)."""
    chosen: dict[str, T] = {}
    for item in items:
        held = chosen.get(item.id)
        if held is None or not idempotent or item.version > held.version:
            chosen[item.id] = item
    return list(chosen.values())


def presence_updates(batch: Batch) -> list[PresenceUpdate]:
    """``batch.presence`` as a store applies it beside ``batch.presence_columns``: one
    update per device (``latest``), less the devices the columns write after it."""
    updates = latest(batch.presence, idempotent=batch.idempotent)
    if not batch.presence_columns:
        return updates
    in_columns = set(batch.presence_columns.ids)
    return [u for u in updates if u.id not in in_columns]


def seen(batch: Batch) -> list[SeenRow]:
    """``batch.seen`` as a store applies it: the last row of each id (one statement
    updates a row once), and in an idempotent batch without the rows of devices the
    batch also upserts or updates (see ``Batch.idempotent``). A plain batch needs no
    such filter, its seen rows go first."""
    rows = batch.seen
    if batch.idempotent and (batch.upserts or batch.presence):
        fuller = {r.id for r in batch.upserts}
        fuller.update(u.id for u in batch.presence)
        rows = [row for row in rows if row[0] not in fuller]
    return list({row[0]: row for row in rows}.values())


def event(row: Any) -> EventRecord:
    seq, device_id, from_status, to_status, at, reason, source, flapping = row
    transition = Transition(
        from_status=_STATUSES[from_status],
        to_status=_STATUSES[to_status],
        at=at,
        reason=_REASONS[reason],
        source=_SOURCES[source],
        # SQLite stores 0/1, PostgreSQL a boolean.
        flapping=bool(flapping),
    )
    return EventRecord(seq=seq, device_id=device_id, transition=transition)


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
