"""The hub seam: what the HTTP layer, security and the CLI need from a hub.

Two hubs implement it: the embedded ``Hub`` (one process, state in memory, SQLite)
and ``RedisHub`` (many stateless instances sharing Redis and a durable store, see
docs/scale-out.md). Everything the web application does goes through these
methods, so the same routes, guards and streams serve both modes unchanged.

Reads that the embedded hub answers from memory are ``async`` here: a shared hub
answers them with a round trip to Redis.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping, Sequence
from typing import Any, Protocol

from lastseen.clock import Clock
from lastseen.errors import InvalidInput
from lastseen.hub.broadcast import Broadcaster, Message, StreamFilter, Subscriber
from lastseen.hub.core import BeatResult
from lastseen.hub.feed import FeedItem
from lastseen.metrics import Counter, Registry
from lastseen.presence import Observation, Profile, ProfileRegistry, Source, Status
from lastseen.settings import Settings
from lastseen.store import DeviceQuery, DeviceRecord, Store

#: One item of a batch: device id, attributes, metrics.
BatchItem = tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]

#: A device's status as the hub's transitions left it: id, labels, profile name,
#: status, and since when (epoch seconds). See ``HubAPI.read_statuses``.
DeviceStatus = tuple[str, Mapping[str, str], str, Status, float]


class HubMetricsAPI(Protocol):
    """The part of a hub's metrics the web layer touches."""

    @property
    def registry(self) -> Registry: ...

    @property
    def rejected(self) -> Counter: ...


class HubAPI(Protocol):
    """A presence hub, embedded or shared."""

    settings: Settings
    profiles: ProfileRegistry
    store: Store
    clock: Clock
    broadcaster: Broadcaster
    started_at: float

    @property
    def metrics(self) -> HubMetricsAPI: ...

    async def start(self) -> None:
        """Open backing services and start background work."""
        ...

    async def stop(self) -> None: ...

    # --- writes ---------------------------------------------------------------------

    async def heartbeat(
        self,
        device_id: str,
        *,
        source: Source = Source.HEARTBEAT,
        attributes: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        register: bool = True,
    ) -> BeatResult:
        """A sign of life from the device itself."""
        ...

    async def heartbeats(self, items: Sequence[BatchItem]) -> list[BeatResult | InvalidInput]:
        """Many heartbeats at once; a refused item comes back as its error."""
        ...

    async def heartbeat_statuses(self, items: Sequence[BatchItem]) -> list[Status | InvalidInput]:
        """``heartbeats`` answered with each device's status after its heartbeat (all
        the batch route and MQTT answer from), which a hub may find cheaper to give."""
        ...

    async def apply(
        self, device_id: str, observation: Observation, *, register: bool = False
    ) -> BeatResult:
        """Any observation (connect, disconnect, probe, manual) for one device."""
        ...

    async def put_device(
        self,
        device_id: str,
        *,
        profile: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> tuple[DeviceRecord, bool]:
        """Register or update a device; True if it was created."""
        ...

    async def delete_device(self, device_id: str) -> None: ...

    # --- reads ----------------------------------------------------------------------

    async def read_device(self, device_id: str) -> tuple[DeviceRecord, Profile]:
        """The device as a reader should see it now; ``NotFound`` if unknown."""
        ...

    async def knows(self, device_id: str) -> bool:
        """Whether the device is registered."""
        ...

    async def profile_of(self, device_id: str) -> Profile | None:
        """The device's profile, or None for an unknown device."""
        ...

    async def device_count(self) -> int: ...

    async def current_seq(self) -> int:
        """The newest assigned transition seq."""
        ...

    async def ready(self) -> str | None:
        """None when the hub can serve; else which backing service is not ready."""
        ...

    async def list_devices(
        self, query: DeviceQuery
    ) -> tuple[list[tuple[DeviceRecord, Profile]], str | None, int]:
        """A page of devices, the next cursor, and the seq the page reflects."""
        ...

    # --- streams --------------------------------------------------------------------

    async def open_stream(
        self, stream_filter: StreamFilter, after: int | None
    ) -> tuple[Subscriber, AsyncIterator[Message]]:
        """Subscribe, and the backfill of what a resuming subscriber missed."""
        ...

    async def read_snapshot(self, stream_filter: StreamFilter) -> tuple[int, list[dict[str, Any]]]:
        """Every matching device and the seq the snapshot is consistent with."""
        ...

    async def read_statuses(
        self, statuses: Collection[Status], ids: Collection[str] = ()
    ) -> tuple[int, list[DeviceStatus]]:
        """Every device whose status is one of ``statuses`` or whose id is in ``ids``
        (unknown ids are left out), with the seq the answer is consistent with.

        Unlike ``read_snapshot`` a device is not judged at now: one past a deadline
        that no sweep has reached yet keeps the status of its last transition, and the
        transitions the sweep makes come after the seq, through ``transitions(seq)``.
        So a consumer that starts from this answer and then follows the feed sees each
        transition exactly once (the notifier seeds its alert engine this way). Cheap
        enough to ask at the start of a hub of 10^6 devices: no record, no JSON."""
        ...

    def transitions(self, after: int) -> AsyncGenerator[list[FeedItem], None]:
        """Every transition with seq > ``after`` (fleet-wide in scale-out), then live,
        in seq order and in batches, until the hub stops; a ``FeedReset`` when history
        after ``after`` is gone (hub/feed.py). For in-process consumers (the notifier)."""
        ...

    async def announce(
        self, kind: str, device_id: str, labels: Mapping[str, str], body: bytes
    ) -> None:
        """A message about one device that is not a transition (an alert) to every
        matching stream subscriber, on every instance in scale-out."""
        ...
