"""Schema of the SQLite store, as ordered migration steps.

Each step is ``(version, script)``. ``SQLiteStore.open()`` applies the steps whose
version is above the file's ``PRAGMA user_version``, in order, each in its own
transaction that also records the new version. Append new steps; never edit one
that has been released: existing databases have already run it.
"""

from __future__ import annotations

#: ``(version, script)`` in increasing version order, starting at 1.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE devices (
            id          TEXT PRIMARY KEY NOT NULL,
            profile     TEXT NOT NULL,
            labels      TEXT NOT NULL DEFAULT '{}',
            attributes  TEXT NOT NULL DEFAULT '{}',
            metrics     TEXT NOT NULL DEFAULT '{}',
            status      TEXT NOT NULL,
            since       REAL NOT NULL,
            last_seen   REAL,
            last_own    REAL,
            anchor      REAL,
            reason      TEXT,
            source      TEXT,
            session     INTEGER,
            flaps       TEXT NOT NULL DEFAULT '[]',
            flapping    INTEGER NOT NULL DEFAULT 0,
            created_at  REAL NOT NULL,
            updated_at  REAL NOT NULL
        );
        -- (status, id) and (profile, id) rather than bare columns: a filtered,
        -- cursor-paginated listing then walks the index in id order and stops at LIMIT.
        CREATE INDEX devices_status ON devices (status, id);
        CREATE INDEX devices_profile ON devices (profile, id);

        -- No foreign key to devices: deleting a device keeps its history.
        CREATE TABLE events (
            seq          INTEGER PRIMARY KEY,
            device_id    TEXT NOT NULL,
            from_status  TEXT NOT NULL,
            to_status    TEXT NOT NULL,
            at           REAL NOT NULL,
            reason       TEXT NOT NULL,
            source       TEXT NOT NULL,
            flapping     INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX events_device ON events (device_id, seq);
        CREATE INDEX events_at ON events (at);

        -- last_seq lives here, not in max(events.seq), so it survives pruning.
        CREATE TABLE meta (
            key    TEXT PRIMARY KEY NOT NULL,
            value
        );
        INSERT INTO meta (key, value) VALUES ('last_seq', 0);
        """,
    ),
    (
        2,
        """
        -- API keys and device tokens: the SHA-256 digest of the secret, never the secret.
        CREATE TABLE keys (
            id              TEXT PRIMARY KEY NOT NULL,
            role            TEXT NOT NULL,
            name            TEXT NOT NULL,
            digest          BLOB NOT NULL UNIQUE,
            device_id       TEXT,
            max_per_minute  INTEGER NOT NULL DEFAULT 0,
            created_at      REAL NOT NULL,
            created_by      TEXT NOT NULL,
            revoked_at      REAL
        );
        CREATE INDEX keys_device ON keys (device_id) WHERE device_id IS NOT NULL;
        -- Bumped by every key change, so other processes notice with one cheap read.
        INSERT INTO meta (key, value) VALUES ('keys_version', 0);

        CREATE TABLE audit (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            at       REAL NOT NULL,
            actor    TEXT NOT NULL,
            action   TEXT NOT NULL,
            target   TEXT NOT NULL,
            source   TEXT NOT NULL,
            details  TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_at ON audit (at);
        """,
    ),
    (
        3,
        """
        -- Orders the writes of an idempotent (at-least-once) batch: see Batch.idempotent.
        ALTER TABLE devices ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
        """,
    ),
]
