"""Rows of the key and audit tables, the same on every SQL backend."""

from __future__ import annotations

from typing import Any

import orjson

from lastseen.store.base import AuditRecord, KeyRecord


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
