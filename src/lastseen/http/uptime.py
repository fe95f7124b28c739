"""Uptime routes: one device's, and the fleet's, over a window ending now.

Both are computed from the durable transition history (``store.events``) with the
pure ``lastseen.uptime`` arithmetic, and only through the hub's public reads
(``get``, ``list_devices``, ``store``, ``clock``), so any hub backend serves them.

Work is bounded: history is read in pages of ``PAGE`` events, at most
``MAX_EVENTS`` of them per request (past that the answer says ``"complete": false``
rather than scanning on), and the fleet summary pages through devices ``PAGE`` at a
time, yielding to the event loop between pages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lastseen.http.responses import JSONResponse
from lastseen.hub.api import HubAPI
from lastseen.hub.core import check_device_id
from lastseen.presence import Status
from lastseen.store import DeviceQuery, EventRecord, Store
from lastseen.timefmt import rfc3339
from lastseen.uptime import FleetUptime, Uptime, UptimeCounter, fleet, parse_window

PAGE = 1000
#: Events one request reads at most (a flapping fleet's week fits many times over).
MAX_EVENTS = 1_000_000


def _hub(request: Request) -> HubAPI:
    hub: HubAPI = request.app.state.hub
    return hub


class _History:
    """The durable transition history in seq order, read ``PAGE`` events at a time.

    Stops after ``MAX_EVENTS``; ``complete`` then says the answer did not see it all.
    """

    def __init__(self, store: Store, device_id: str | None = None) -> None:
        self._store = store
        self._device_id = device_id
        self.complete = True

    async def __aiter__(self) -> AsyncIterator[EventRecord]:
        after = 0
        read = 0
        while True:
            page = await self._store.events(after, PAGE, device_id=self._device_id)
            for event in page:
                yield event
            read += len(page)
            if len(page) < PAGE:
                return
            if read >= MAX_EVENTS:
                self.complete = False
                return
            after = page[-1].seq
            await asyncio.sleep(0)


def _by_status(values: Any) -> dict[str, float]:
    return {status.value: round(values[status], 6) for status in Status}


def _window(window: float, now: float) -> dict[str, Any]:
    return {"window": window, "start": rfc3339(now - window), "end": rfc3339(now)}


def _totals(result: Uptime | FleetUptime) -> dict[str, Any]:
    return {
        "fractions": _by_status(result.fractions),
        "seconds": _by_status(result.seconds),
        "transitions": result.transitions,
    }


async def device_uptime(request: Request) -> Response:
    hub = _hub(request)
    device_id = check_device_id(request.path_params["device_id"])
    window = parse_window(request.query_params.get("window"))
    record, _ = await hub.read_device(device_id)  # 404 for an unknown device
    now = hub.clock.now()
    counter = UptimeCounter(start=now - window, end=now, created_at=record.created_at)
    history = _History(hub.store, device_id)
    async for event in history:
        t = event.transition
        counter.feed(t.at, t.from_status, t.to_status)
    result = counter.result(record.state.status, record.state.since)
    return JSONResponse(
        {
            "device_id": device_id,
            **_window(window, now),
            **_totals(result),
            "complete": history.complete,
        }
    )


async def fleet_uptime(request: Request) -> Response:
    hub = _hub(request)
    window = parse_window(request.query_params.get("window"))
    now = hub.clock.now()
    start = now - window
    # One pass over the fleet's history, one counter per device: memory grows with
    # the fleet, not with its history.
    counters: dict[str, UptimeCounter] = {}
    current: dict[str, tuple[Status, float]] = {}
    cursor: str | None = None
    while True:
        page, cursor, _ = await hub.list_devices(DeviceQuery(after=cursor, limit=PAGE))
        for record, _profile in page:
            counters[record.id] = UptimeCounter(start=start, end=now, created_at=record.created_at)
            current[record.id] = (record.state.status, record.state.since)
        if cursor is None:
            break
        await asyncio.sleep(0)
    history = _History(hub.store)
    async for event in history:
        counter = counters.get(event.device_id)
        if counter is not None:  # a deleted device's history has no device now
            t = event.transition
            counter.feed(t.at, t.from_status, t.to_status)
    summary: FleetUptime = fleet(
        counters[device_id].result(*current[device_id]) for device_id in counters
    )
    counts = dict.fromkeys((s.value for s in Status), 0)
    for status, _since in current.values():
        counts[status.value] += 1
    return JSONResponse(
        {
            **_window(window, now),
            "devices": summary.devices,
            **_totals(summary),
            "current": counts,
            "complete": history.complete,
        }
    )


routes = [
    Route("/v1/devices/{device_id}/uptime", device_uptime, methods=["GET"]),
    Route("/v1/uptime", fleet_uptime, methods=["GET"]),
]
