"""Durable storage: the ``Store`` seam and its backends."""

from lastseen.store.base import (
    Batch,
    DeviceQuery,
    DeviceRecord,
    EventRecord,
    SeenUpdate,
    Store,
)
from lastseen.store.sqlite import SQLiteStore

__all__ = [
    "Batch",
    "DeviceQuery",
    "DeviceRecord",
    "EventRecord",
    "SQLiteStore",
    "SeenUpdate",
    "Store",
]
