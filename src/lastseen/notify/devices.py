"""What the notifier needs of a device to route its events: labels and profile name.

Read through the ``HubAPI`` (``read_device``) at the time each batch is handled, so a
relabelled device is routed by its new labels at once, on either hub. The embedded
hub answers from memory; the shared hub with one Redis round trip per device, a
bounded number at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from lastseen.errors import NotFound

if TYPE_CHECKING:
    from lastseen.hub.api import HubAPI

T = TypeVar("T")

#: ``(labels, profile name)``.
Facts = tuple[Mapping[str, str], str]
#: A device deleted meanwhile: routed as an unlabelled device of the default profile.
UNKNOWN: Facts = ({}, "default")
#: Reads in flight at once (the shared hub's connection pool is not unbounded).
CONCURRENCY = 32


async def _bounded(call: Callable[[str], Awaitable[T]], device_ids: Sequence[str]) -> list[T]:
    """``call`` for each id, at most ``CONCURRENCY`` at a time, results in order (each
    awaitable is made only when its turn comes, so a failure leaves none unawaited)."""
    out: list[T] = []
    for start in range(0, len(device_ids), CONCURRENCY):
        chunk = device_ids[start : start + CONCURRENCY]
        out += await asyncio.gather(*(call(d) for d in chunk))
    return out


async def device_facts(hub: HubAPI, device_ids: Iterable[str]) -> dict[str, Facts]:
    """Labels and profile of each device (``UNKNOWN`` for one that is gone)."""

    async def one(device_id: str) -> tuple[str, Facts]:
        try:
            record, _ = await hub.read_device(device_id)
        except NotFound:
            return device_id, UNKNOWN
        return device_id, (record.labels, record.profile)

    return dict(await _bounded(one, sorted(set(device_ids))))


async def deleted(hub: HubAPI, device_ids: Sequence[str]) -> list[str]:
    """The devices among ``device_ids`` the hub no longer knows."""
    known = await _bounded(hub.knows, device_ids)
    return [d for d, k in zip(device_ids, known, strict=True) if not k]
