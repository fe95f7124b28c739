"""Which ``NotifyStore`` a hub gets: PostgreSQL with ``--postgres``, else SQLite."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lastseen.notify.service import Notifier
from lastseen.notify.store import NotifyStore

if TYPE_CHECKING:
    from lastseen.hub.core import Hub


def notify_store(hub: Hub) -> NotifyStore:
    """The store for the hub's settings: shared PostgreSQL in scale-out; otherwise a
    SQLite file beside the hub's own (``lastseen.db`` → ``lastseen.notify.db``), or
    an in-memory database for a hub whose store has no file."""
    settings = hub.settings
    if settings.postgres:
        from lastseen.notify.postgres import PostgresNotifyStore

        return PostgresNotifyStore(settings.postgres)
    from lastseen.notify.sqlite import SQLiteNotifyStore

    path = getattr(hub.store, "path", None)
    return SQLiteNotifyStore(path.with_suffix(".notify.db") if path is not None else ":memory:")


def build_notifier(hub: Hub) -> Notifier:
    return Notifier(hub, notify_store(hub), config_rules=hub.settings.alerts)
