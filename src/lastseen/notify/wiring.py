"""Which ``NotifyStore`` a hub gets: PostgreSQL with ``--postgres``, else SQLite (either hub)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lastseen.notify.service import Notifier
from lastseen.notify.store import NotifyStore

if TYPE_CHECKING:
    from lastseen.hub.api import HubAPI


def notify_store(hub: HubAPI) -> NotifyStore:
    """The store for the hub's settings: shared PostgreSQL in scale-out; otherwise a
    SQLite file beside the hub's own (``lastseen.db`` → ``lastseen.notify.db``), or
    an in-memory database for a hub whose store has no file. ``--redis`` without
    ``--postgres`` (several workers on one host sharing one SQLite hub store) shares
    the SQLite notification file the same way: its transactions take SQLite's write
    lock first (``BEGIN IMMEDIATE``), so claims stay exclusive across processes."""
    settings = hub.settings
    if settings.postgres:
        from lastseen.notify.postgres import PostgresNotifyStore

        return PostgresNotifyStore(settings.postgres)
    from lastseen.notify.sqlite import SQLiteNotifyStore

    path = getattr(hub.store, "path", None)
    return SQLiteNotifyStore(path.with_suffix(".notify.db") if path is not None else ":memory:")


def build_notifier(hub: HubAPI) -> Notifier:
    return Notifier(hub, notify_store(hub), config_rules=hub.settings.alerts)
