"""Durable storage: the ``Store`` seam and its backends."""

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
    SeenRow,
    Store,
)
from lastseen.store.sqlite import SQLiteStore

__all__ = [
    "AuditRecord",
    "Batch",
    "DeviceQuery",
    "DeviceRecord",
    "DeviceRow",
    "EventRecord",
    "KeyRecord",
    "PresenceColumns",
    "PresenceUpdate",
    "SQLiteStore",
    "SeenRow",
    "Store",
]
