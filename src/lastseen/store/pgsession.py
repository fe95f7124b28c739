"""What a PostgreSQL store does with a connection before any record moves: how it
connects, how it names the database in messages, how it migrates the schema and how
an embedded hub claims the database for itself."""

from __future__ import annotations

import logging
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict

from lastseen.errors import StoreError
from lastseen.store.migrations import postgres as schema

log = logging.getLogger("lastseen.store.postgres")

Conn = psycopg.AsyncConnection[Any]

#: Advisory lock keys (int8) next to ``schema.MIGRATION_LOCK``: the first-key bootstrap
#: (transaction lock) and the one embedded hub per database (session lock).
KEYS_LOCK: Final = schema.MIGRATION_LOCK + 1
HUB_LOCK: Final = schema.MIGRATION_LOCK + 2


def describe_dsn(dsn: str) -> str:
    """``postgresql://user@host:port/dbname`` without the password, for messages."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable DSN)"
    user = str(params.get("user") or "")
    host = str(params.get("host") or "localhost")
    port = str(params.get("port") or "5432")
    dbname = str(params.get("dbname") or user)
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{dbname}"


def connect_kwargs(connect_timeout: float) -> dict[str, Any]:
    """Connection parameters added to the DSN's own (they win over it)."""
    return {
        "autocommit": True,
        # libpq counts whole seconds and treats anything below 2 as 2; the caller's
        # own bound (connect_timeout, in asyncio) is what limits a wait.
        "connect_timeout": max(2, int(connect_timeout + 0.999)),
        "application_name": "lastseen",
        # Notice a peer that vanished without a FIN (a dead host, a cut link).
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }


async def migrate(conn: Conn, where: str) -> None:
    """Apply the pending steps of ``schema.MIGRATIONS``; refuse a newer schema."""
    known = schema.MIGRATIONS[-1][0]
    for version, script in schema.MIGRATIONS:
        async with conn.transaction():
            # The lock serialises instances starting at once; the version is re-read
            # under it, so each step runs exactly once.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema.MIGRATION_LOCK,))
            await conn.execute(schema.SCHEMA_VERSION_TABLE)
            cursor = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            found = (await cursor.fetchone() or (0,))[0]
            if found > known:
                raise StoreError(
                    f"PostgreSQL store {where} has schema version {found}, but this "
                    f"lastseen only knows up to {known}: it was written by a newer "
                    "lastseen; upgrade lastseen or point --postgres elsewhere"
                )
            if found >= version:
                continue
            await conn.execute(script, prepare=False)
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            log.info("event=migrated store=%s version=%d", where, version)


async def lock_exclusive(conn: Conn, where: str) -> None:
    """Claim the database for one embedded hub, until ``conn`` closes."""
    cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (HUB_LOCK,))
    row = await cursor.fetchone()
    if not (row and row[0]):
        raise StoreError(
            f"PostgreSQL store {where} is in use by another lastseen serve "
            "(without --redis, one instance owns a database); stop it or use another "
            "database"
        )
