"""The durable store seam: what every backend (SQLite, PostgreSQL, ...) must provide.

The hub keeps hot presence in memory (embedded mode) and uses the store for
durability: every transition is committed here *before* it is published or
acknowledged, and ``last_seen`` reaches it write-behind. A store applies a
``Batch`` atomically, so the hub can group-commit many changes in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lastseen.presence import DeviceState, Status, Transition

JSONMap = Mapping[str, Any]


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


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A transition with its device and its fleet-wide, strictly increasing ``seq``."""

    seq: int
    device_id: str
    transition: Transition


@dataclass(frozen=True, slots=True)
class SeenUpdate:
    """The write-behind of a heartbeat that changed nothing but time: only the
    ``last_seen``/``last_own``/``anchor`` columns of an existing device move."""

    id: str
    last_seen: float | None
    last_own: float | None
    anchor: float | None


@dataclass(frozen=True, slots=True)
class Batch:
    """Changes applied in one transaction, in this order: full-row device upserts,
    ``seen`` updates (a no-op for an id that is not stored), deletions, appended
    events. ``events`` must be in increasing ``seq`` order, each seq greater than any
    seq the store already holds."""

    upserts: Sequence[DeviceRecord] = ()
    deletes: Sequence[str] = ()
    events: Sequence[EventRecord] = ()
    seen: Sequence[SeenUpdate] = ()

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.events or self.seen)


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """Filters and cursor for listing devices, ordered by id."""

    status: Status | None = None
    profile: str | None = None
    label: tuple[str, str] | None = None
    after: str | None = None
    limit: int = 100


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
