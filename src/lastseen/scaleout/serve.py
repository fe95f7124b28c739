"""Building a shared hub for ``lastseen serve --redis URL [--postgres DSN]``."""

from __future__ import annotations

from pathlib import Path

from lastseen.scaleout.connection import is_cluster
from lastseen.scaleout.hub import RedisHub
from lastseen.scaleout.ratelimit import RedisRateLimiter
from lastseen.security.service import BootstrapHook, Security
from lastseen.settings import Settings
from lastseen.store import SQLiteStore, Store


def durable_store(settings: Settings, data_dir: Path) -> Store:
    """PostgreSQL when ``--postgres`` is given, else SQLite under the data directory
    (enough for several workers on one host; PostgreSQL for several hosts)."""
    if settings.postgres:
        from lastseen.store.postgres import PostgresStore

        # Not exclusive: every instance writes to it (Redis assigns the seqs).
        return PostgresStore(settings.postgres)
    return SQLiteStore(data_dir / "lastseen.db")


def build(
    settings: Settings, store: Store, on_bootstrap: BootstrapHook | None
) -> tuple[RedisHub, Security]:
    """The shared hub and its security, with rate limits held in Redis."""
    assert settings.redis is not None
    hub = RedisHub(
        settings,
        store,
        settings.redis,
        prefix=settings.redis_prefix,
        cluster=settings.redis_cluster or is_cluster(settings.redis),
    )

    def failed() -> None:
        hub.metrics.redis_errors.inc(1.0, "ratelimit")

    security = Security(
        settings,
        hub.store,
        hub.clock,
        hub.broadcaster,
        registry=hub.metrics.registry,
        on_bootstrap=on_bootstrap,
        device_limiter=RedisRateLimiter(hub.redis, hub.keys, "device", failed),
        key_limiter=RedisRateLimiter(hub.redis, hub.keys, "key", failed),
    )
    return hub, security
