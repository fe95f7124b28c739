"""Schema of the PostgreSQL store, as ordered migration steps.

Each step is ``(version, script)``. ``PostgresStore.open()`` applies the steps whose
version is not yet in the ``schema_version`` table, in order, each in its own
transaction that also records the version, under a transaction-level advisory lock
(``MIGRATION_LOCK``): several instances starting at once apply each step exactly
once, the others wait for it and then find it done. PostgreSQL's DDL is
transactional, so a step is all or nothing. Append new steps; never edit one that
has been released: existing databases have already run it. (A step that needs
``CREATE INDEX CONCURRENTLY`` cannot run in a transaction and needs its own runner.)

Choices that make the two backends agree:

* ids are ``COLLATE "C"``: byte order of UTF-8 is code-point order, the order of
  Python's ``sorted`` and of SQLite, so cursor pagination is the same everywhere
  (a linguistic collation would sort ``gw.b`` and ``gwa`` differently per locale);
* times are ``float8`` seconds since the epoch, exactly the floats the hub holds;
* attributes, metrics and audit details are the JSON *text* the hub encoded
  (``json``/``jsonb`` would re-format numbers and refuse ``\\u0000``); labels are
  ``jsonb`` (flat string maps, which round-trip exactly) for the GIN-indexed filter.
"""

from __future__ import annotations

from typing import Final

#: ``pg_advisory_xact_lock`` key held while migrating ("lastseen" in ASCII, as int8).
MIGRATION_LOCK: Final = 0x6C61737473656560

#: Created before any step, so the version can be read and recorded.
SCHEMA_VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""

#: ``(version, script)`` in increasing version order, starting at 1.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE devices (
            id          text COLLATE "C" PRIMARY KEY,
            profile     text COLLATE "C" NOT NULL,
            labels      jsonb NOT NULL DEFAULT '{}',
            attributes  text NOT NULL DEFAULT '{}',
            metrics     text NOT NULL DEFAULT '{}',
            status      text NOT NULL,
            since       float8 NOT NULL,
            last_seen   float8,
            last_own    float8,
            anchor      float8,
            reason      text,
            source      text,
            session     int8,
            flaps       float8[] NOT NULL DEFAULT '{}',
            flapping    boolean NOT NULL DEFAULT false,
            created_at  float8 NOT NULL,
            updated_at  float8 NOT NULL,
            -- Orders at-least-once writes (Batch.idempotent); 0 when unused.
            version     int8 NOT NULL DEFAULT 0
        );
        -- (status, id) and (profile, id): a filtered, cursor-paginated listing walks
        -- the index in id order and stops at LIMIT.
        CREATE INDEX devices_status ON devices (status, id);
        CREATE INDEX devices_profile ON devices (profile, id);
        CREATE INDEX devices_labels ON devices USING gin (labels jsonb_path_ops);

        -- No foreign key to devices: deleting a device keeps its history.
        CREATE TABLE events (
            seq          int8 PRIMARY KEY,
            device_id    text COLLATE "C" NOT NULL,
            from_status  text NOT NULL,
            to_status    text NOT NULL,
            at           float8 NOT NULL,
            reason       text NOT NULL,
            source       text NOT NULL,
            flapping     boolean NOT NULL DEFAULT false
        );
        CREATE INDEX events_device ON events (device_id, seq);
        CREATE INDEX events_at ON events (at);

        -- last_seq lives here, not in max(events.seq), so it survives pruning; its
        -- row lock also serialises appends from several processes.
        CREATE TABLE meta (
            key    text PRIMARY KEY,
            value  int8 NOT NULL
        );
        INSERT INTO meta (key, value) VALUES ('last_seq', 0), ('keys_version', 0);

        -- API keys and device tokens: the SHA-256 digest of the secret, never the secret.
        CREATE TABLE keys (
            id              text COLLATE "C" PRIMARY KEY,
            role            text NOT NULL,
            name            text NOT NULL,
            digest          bytea NOT NULL UNIQUE,
            device_id       text COLLATE "C",
            max_per_minute  integer NOT NULL DEFAULT 0,
            created_at      float8 NOT NULL,
            created_by      text NOT NULL,
            revoked_at      float8
        );
        CREATE INDEX keys_device ON keys (device_id) WHERE device_id IS NOT NULL;

        -- An identity never hands out a value twice, even after pruning.
        CREATE TABLE audit (
            id       int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at       float8 NOT NULL,
            actor    text NOT NULL,
            action   text NOT NULL,
            target   text NOT NULL,
            source   text NOT NULL,
            details  text NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_at ON audit (at);
        """,
    ),
]
