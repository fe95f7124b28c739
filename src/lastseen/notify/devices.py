"""What the notifier needs of a device to route its events: labels and profile name.

Read through the ``HubAPI`` (``read_device``) at the time each batch is handled, so a
relabelled device is routed by its new labels at once, on either hub. The embedded
hub answers from memory; the shared hub with one Redis round trip per device, a
bounded number at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from lastseen.errors import NotFound

if TYPE_CHECKING:
    from lastseen.hub.api import HubAPI

#: ``(labels, profile name)``.
Facts = tuple[Mapping[str, str], str]
#: A device deleted meanwhile: routed as an unlabelled device of the default profile.
UNKNOWN: Facts = ({}, "default")
#: Reads in flight at once (the shared hub's connection pool is not unbounded).
CONCURRENCY = 32


async def device_facts(hub: HubAPI, device_ids: Iterable[str]) -> dict[str, Facts]:
    """Labels and profile of each device (``UNKNOWN`` for one that is gone)."""

    async def one(device_id: str) -> tuple[str, Facts]:
        try:
            record, _ = await hub.read_device(device_id)
        except NotFound:
            return device_id, UNKNOWN
        return device_id, (record.labels, record.profile)

    ids = sorted(set(device_ids))
    out: dict[str, Facts] = {}
    for start in range(0, len(ids), CONCURRENCY):
        chunk = ids[start : start + CONCURRENCY]
        out.update(await asyncio.gather(*(one(d) for d in chunk)))
    return out
