"""The durable store seam: what every backend (SQLite, PostgreSQL, ...) must provide.

The hub keeps hot presence in memory (embedded mode) and uses the store for
durability: every transition is committed here *before* it is published or
acknowledged, and ``last_seen`` reaches it write-behind. A store applies a
``Batch`` atomically, so the hub can group-commit many changes in one transaction.

The store also keeps the API keys (only their SHA-256 digests) and the audit log;
the security layer caches keys in memory and asks ``keys_version`` whether another
process changed them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lastseen.presence import DeviceState, Reason, Source, Status, Transition

JSONMap = Mapping[str, Any]

#: A device's stored columns, as ``Store.device_rows`` returns them, in this order:
#: ``id, profile, labels, attributes, metrics, status, since, last_seen, last_own,
#: anchor, reason, source, session, flaps, flap, flapping, created_at, updated_at``.
#: Shaped for a bulk load that builds as few objects per row as it can:
#: ``labels``, ``attributes`` and ``metrics`` are None when empty, else JSON text or
#: bytes (or already decoded); ``flaps`` is None unless there are two flaps or more,
#: then JSON text or a sequence of floats; ``flap`` is None unless there is exactly
#: one, then that time as a number or as text ``float()`` reads; ``status`` is its
#: index in ``tuple(Status)``, ``reason`` and ``source`` theirs in ``tuple(Reason)``
#: and ``tuple(Source)`` or -1 for None (declaration order: small ints, never a new
#: object); ``flapping`` is 0 or 1.
DeviceRow = Sequence[Any]


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device as stored: identity, classification, latest attributes, presence."""

    id: str
    profile: str
    state: DeviceState
    labels: Mapping[str, str] = field(default_factory=dict)
    attributes: JSONMap = field(default_factory=dict)
    metrics: JSONMap = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    #: Orders writes of this device in an ``idempotent`` batch (see ``Batch``); 0 if unused.
    version: int = 0


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A transition with its device and its fleet-wide, strictly increasing ``seq``."""

    seq: int
    device_id: str
    transition: Transition


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    """A change of presence alone (a timeout, a transition, a heartbeat's new time):
    only the presence columns of an existing device move, none of its JSON."""

    id: str
    state: DeviceState
    #: Orders writes of this device in an ``idempotent`` batch (see ``Batch``); 0 if unused.
    version: int = 0


#: A seen-only write (``Batch.seen``): ``(id, last_seen, last_own, anchor)``, the three
#: times a sign of life moves when nothing else changes. A time is a float or None;
#: NaN is read as None (the embedded hub's columns hold "no time" as NaN, and pass
#: them through as they are).
SeenRow = tuple[str, float | None, float | None, float | None]


@dataclass(frozen=True, slots=True)
class PresenceColumns:
    """Presence updates as parallel columns: position ``i`` is the same write as
    ``PresenceUpdate(ids[i], DeviceState(status[i], since[i], ...))`` with version 0.

    For a producer that keeps its state in columns (the embedded hub's table): it
    hands over its values without building a ``DeviceState`` and a ``PresenceUpdate``
    per device, which cost more than the SQL itself in a 100 000-device burst
    (BENCHMARKS.md). Each id appears at most once; all columns have the same length.
    """

    ids: Sequence[str]
    status: Sequence[Status]
    since: Sequence[float]
    last_seen: Sequence[float | None]
    last_own: Sequence[float | None]
    anchor: Sequence[float | None]
    reason: Sequence[Reason | None]
    source: Sequence[Source | None]
    session: Sequence[int | None]
    flaps: Sequence[tuple[float, ...]]
    flapping: Sequence[bool]

    def __len__(self) -> int:
        return len(self.ids)

    def updates(self) -> Iterator[PresenceUpdate]:
        """The same writes as ``PresenceUpdate``s."""
        for values in zip(
            self.ids, self.status, self.since, self.last_seen, self.last_own, self.anchor,
            self.reason, self.source, self.session, self.flaps, self.flapping, strict=True,
        ):  # fmt: skip
            yield PresenceUpdate(values[0], DeviceState(*values[1:]))


@dataclass(frozen=True, slots=True)
class Batch:
    """Changes applied in one transaction, in this order: ``seen`` writes, full-row
    device upserts, ``presence`` updates, then ``presence_columns`` (both a no-op for
    an id that is not stored), deletions, appended events. ``events`` must be in
    increasing ``seq`` order, each seq greater than any seq the store already holds.

    ``seen`` rows (``SeenRow``) are the write-behind of heartbeats: each
    sets only ``last_seen``, ``last_own`` and ``anchor`` of a stored device, nothing
    else (not its ``version``), with no record or state object per device; for
    10^6 devices that is most of what the hub writes. A row for an id that is not
    stored is a no-op, and so is one for an id this batch deletes. Because they go
    first, any upsert or presence update of the same device in the batch is applied
    after them and wins: a producer puts a device in ``seen`` only when nothing but
    those times moved. Of several ``seen`` rows of one id, the last one wins. Rows
    may come in any order; sorted by id they are written fastest (SQLite walks its
    B-trees in order instead of hopping across them).

    ``idempotent=True`` is for a producer that delivers at least once and possibly
    out of order (the scale-out outbox draining Redis into PostgreSQL). Then:

    * an event whose seq is already stored is skipped, not refused; seqs may arrive
      in any order and below ``last_seq()``, which becomes the highest seq ever seen;
    * an upsert or presence update is applied only if its ``version`` is greater than
      the stored ``version`` of that device (an insert of a new id always is), so a
      replayed older batch never moves a device backwards; of several writes of one id
      in the batch, the highest version wins. ``version`` must grow with every write of
      a device *across a delete and re-create too*: a fleet-wide counter does that;
    * deletes are applied as given (they carry no version): a replayed upsert older
      than a delete re-creates the device, so a producer that can reorder them must
      send deletes outside the idempotent path;
    * a ``seen`` row (it carries no version) of a device that the batch also upserts
      or updates is dropped: the fuller write stands for it, whether its version lets
      it land or not, so a replayed batch cannot move that device either. Any other
      is applied only if its ``last_seen`` is later than the stored one (or none is
      stored), so a replay never moves the times back; it leaves the stored
      ``version`` as it is.

    Without the flag, every write is applied and stores the version it carries.
    An event seq replayed after it was pruned is stored again in idempotent mode.
    """

    upserts: Sequence[DeviceRecord] = ()
    deletes: Sequence[str] = ()
    events: Sequence[EventRecord] = ()
    presence: Sequence[PresenceUpdate] = ()
    #: Only in a batch that is not ``idempotent`` (its writes carry version 0).
    presence_columns: PresenceColumns | None = None
    idempotent: bool = False
    seen: Sequence[SeenRow] = ()

    def __post_init__(self) -> None:
        if self.idempotent and self.presence_columns:
            raise ValueError("presence_columns carry no versions: not in an idempotent batch")

    def __bool__(self) -> bool:
        return bool(
            self.upserts
            or self.deletes
            or self.events
            or self.presence
            or self.presence_columns
            or self.seen
        )


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """Filters and cursor for listing devices, ordered by id."""

    status: Status | None = None
    profile: str | None = None
    label: tuple[str, str] | None = None
    after: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key or device token as stored: never the secret, only its digest.

    ``role`` is ``admin``, ``read``, ``ingest`` or ``device`` (then ``device_id`` names
    the one device it may speak for). ``max_per_minute`` of 0 means the hub's default.
    """

    id: str
    role: str
    name: str
    digest: bytes
    device_id: str | None = None
    max_per_minute: int = 0
    created_at: float = 0.0
    created_by: str = ""
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One administrative action: who (``actor``, a key id), when, what, from where.

    ``id`` is assigned by the store (strictly increasing); pass 0 when appending.
    """

    id: int
    at: float
    actor: str
    action: str
    target: str
    source: str
    details: JSONMap = field(default_factory=dict)


class Store(Protocol):
    """Durable storage of devices and the transition history."""

    async def open(self) -> None:
        """Connect and apply pending schema migrations."""
        ...

    async def close(self) -> None: ...

    async def apply(self, batch: Batch) -> None:
        """Apply ``batch`` atomically; on return it is durable. Raises ``StoreError``."""
        ...

    async def load_devices(self) -> list[DeviceRecord]:
        """Every device, for rebuilding hot state at start."""
        ...

    def device_rows(self) -> AsyncIterator[Sequence[DeviceRow]]:
        """Every device as its stored columns (see ``DeviceRow``), undecoded, in batches
        of at most ``DEVICE_ROWS_BATCH`` rows: what the embedded hub loads at start
        straight into its columns, never holding more than a batch of row objects.
        Same devices as ``load_devices``."""
        ...

    async def get_device(self, device_id: str) -> DeviceRecord | None: ...

    async def list_devices(self, query: DeviceQuery) -> list[DeviceRecord]:
        """Devices matching ``query`` with id > ``query.after``, ordered by id."""
        ...

    async def events(
        self, after: int, limit: int, device_id: str | None = None
    ) -> list[EventRecord]:
        """Events with seq > ``after`` in seq order, at most ``limit``."""
        ...

    async def last_seq(self) -> int:
        """The highest seq ever assigned (0 if none); never decreases, even after pruning."""
        ...

    async def first_seq(self) -> int:
        """The lowest seq still retained, or ``last_seq() + 1`` if none is."""
        ...

    async def prune_events(self, before: float) -> int:
        """Delete events with ``at`` < ``before``; returns how many."""
        ...

    async def size_bytes(self) -> int:
        """Bytes the store occupies (for /healthz)."""
        ...

    # --- keys -----------------------------------------------------------------------

    async def put_key(self, key: KeyRecord, *, only_if_none: bool = False) -> bool:
        """Store a new key; False (nothing written) when ``only_if_none`` and any key
        exists, revoked or not. Raises ``Conflict`` if the id is taken."""
        ...

    async def revoke_key(self, key_id: str, at: float) -> KeyRecord | None:
        """Mark a key revoked at ``at`` (an already revoked key keeps its first time);
        the key as now stored, or None if there is no such key."""
        ...

    async def load_keys(self) -> list[KeyRecord]:
        """Every key, revoked ones included, ordered by ``created_at`` then id."""
        ...

    async def keys_version(self) -> int:
        """A number that changes whenever any key is added or revoked."""
        ...

    # --- audit ----------------------------------------------------------------------

    async def append_audit(self, record: AuditRecord) -> int:
        """Append durably (``record.id`` is ignored); returns the id assigned."""
        ...

    async def audit(
        self,
        *,
        after: int = 0,
        before: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[AuditRecord]:
        """At most ``limit`` audit records with ``after`` < id < ``before`` (no upper
        bound if None), oldest first or newest first."""
        ...

    async def prune_audit(self, before: float) -> int:
        """Delete audit records with ``at`` < ``before``; returns how many."""
        ...
