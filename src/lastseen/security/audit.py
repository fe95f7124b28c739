"""The audit log: who did which administrative thing, when, and from where.

Each record is appended to the store in its own transaction *before* the action is
answered, so an acknowledged admin action always has its record. Reads, heartbeats
and refusals are not audited (they are counted in /metrics instead): the audit log
stays small enough to keep for a year.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lastseen.clock import Clock
from lastseen.store import AuditRecord, Store

log = logging.getLogger("lastseen.audit")

#: Actors that are not keys.
SYSTEM = "system"


class Auditor:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        actor: str,
        action: str,
        target: str,
        source: str,
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one record durably; the record with its id."""
        record = AuditRecord(
            id=0,
            at=self._clock.now(),
            actor=actor,
            action=action,
            target=target,
            source=source,
            details=dict(details or {}),
        )
        audit_id = await self._store.append_audit(record)
        log.info(
            "event=audit id=%d action=%s actor=%s target=%s source=%s",
            audit_id,
            action,
            actor,
            target,
            source,
        )
        return AuditRecord(audit_id, record.at, actor, action, target, source, record.details)
