"""Reading devices from Redis: one script call per page, with Redis's own now.

A read returns what Redis holds, judged at Redis's now: a device past a deadline that
no sweeper has reached yet (the few milliseconds between a deadline and its sweep) is
shown as the engine judges it at that moment, exactly like the embedded hub's view.
Listing pages by id through the ``ids`` sorted set; filters apply to the current state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from lastseen.errors import NotFound
from lastseen.hub.broadcast import StreamFilter
from lastseen.presence import DeviceState, Profile, Status, advance, next_deadline
from lastseen.scaleout.codec import record_from_hash
from lastseen.scaleout.connection import reading, translated
from lastseen.store import DeviceQuery, DeviceRecord
from lastseen.wire import device_json

if TYPE_CHECKING:
    from lastseen.hub.api import DeviceStatus
    from lastseen.scaleout.hub import RedisHub

#: Ids fetched per round trip when listing or snapshotting.
_PAGE = 500


class DeviceReads:
    def __init__(self, hub: RedisHub) -> None:
        self.hub = hub

    async def records(self, ids: Sequence[str]) -> tuple[list[DeviceRecord | None], float]:
        """Devices as stored in Redis, and Redis's now, in one round trip."""
        k = self.hub.keys
        with translated():
            replies = await reading(
                lambda: self.hub.read_script(
                    keys=[k.ids], args=[k.device_prefix, k.attributes_prefix, *ids]
                )
            )
        now = int(replies[0]) + int(replies[1]) / 1_000_000
        if self.hub.script_clock is not None:
            now = self.hub.script_clock.now()
        out: list[DeviceRecord | None] = []
        for i, device_id in enumerate(ids):
            flat, attributes = replies[2 + 2 * i], replies[3 + 2 * i]
            if not flat:
                out.append(None)
                continue
            h = dict(zip(flat[::2], flat[1::2], strict=True))
            attrs = dict(zip(attributes[::2], attributes[1::2], strict=True))
            out.append(record_from_hash(device_id, h, attrs))
        return out, now

    async def record(self, device_id: str) -> DeviceRecord | None:
        records, _ = await self.records([device_id])
        return records[0]

    def view(self, record: DeviceRecord, now: float) -> tuple[DeviceRecord, Profile]:
        """Like the embedded hub's view: a device past its deadline that no sweeper has
        reached yet is shown as the engine judges it now."""
        profile = self.hub.profile(record.profile)
        deadline = next_deadline(record.state, profile)
        if deadline is not None and deadline <= now:
            state: DeviceState = advance(record.state, profile, now).state
            record = replace(record, state=state)
        return record, profile

    async def read_device(self, device_id: str) -> tuple[DeviceRecord, Profile]:
        records, now = await self.records([device_id])
        record = records[0]
        if record is None:
            raise NotFound(f"no device {device_id!r}")
        return self.view(record, now)

    async def _ids(self, after: str | None, limit: int) -> list[str]:
        start = "(" + after if after is not None else "-"
        with translated():
            ids: list[str] = await reading(
                lambda: self.hub.redis.zrangebylex(
                    self.hub.keys.ids, start, "+", start=0, num=limit
                )
            )
        return ids

    async def list_devices(
        self, query: DeviceQuery
    ) -> tuple[list[tuple[DeviceRecord, Profile]], str | None, int]:
        """A page ordered by id. Filters apply to the current state; scanning stops at a
        full page or after a bounded number of id pages (the cursor says where)."""
        seq = await self.hub.current_seq()
        page: list[tuple[DeviceRecord, Profile]] = []
        cursor = query.after
        for _ in range(20):
            ids = await self._ids(cursor, query.limit)
            if not ids:
                return page, None, seq
            records, now = await self.records(ids)
            for device_id, record in zip(ids, records, strict=True):
                cursor = device_id
                if record is None or not _matches(record, query):
                    continue
                viewed = self.view(record, now)
                if query.status is not None and viewed[0].state.status is not query.status:
                    continue
                page.append(viewed)
                if len(page) == query.limit:
                    return page, cursor, seq
            if len(ids) < query.limit:
                return page, None, seq
        return page, cursor, seq

    async def read_snapshot(self, stream_filter: StreamFilter) -> tuple[int, list[dict[str, Any]]]:
        seq = await self.hub.current_seq()
        devices: list[dict[str, Any]] = []
        statuses = stream_filter.statuses
        async for ids in self._every_page():
            records, now = await self.records(ids)
            for record in records:
                if record is None or not stream_filter.matches_device(record.id, record.labels):
                    continue
                viewed, profile = self.view(record, now)
                if statuses and viewed.state.status not in statuses:
                    continue
                devices.append(device_json(viewed, profile))
        return seq, devices

    async def read_statuses(
        self, statuses: Collection[Status], ids: Collection[str] = ()
    ) -> tuple[int, list[DeviceStatus]]:
        """Devices as Redis holds them (not judged at now), by pages of ids: every
        device when ``statuses`` is given, else only ``ids``. The seq is read first, so
        a transition made during the scan may be both in the answer and after the seq
        (a consumer seeding from it sees a status it already has, which changes nothing)."""
        seq = await self.hub.current_seq()
        wanted, asked = set(statuses), set(ids)
        out: list[DeviceStatus] = []
        pages = self._every_page() if wanted else _chunks(sorted(asked))
        async for page in pages:
            records, _ = await self.records(page)
            for record in records:
                if record is None:
                    continue
                state = record.state
                if state.status in wanted or record.id in asked:
                    out.append(
                        (record.id, record.labels, record.profile, state.status, state.since)
                    )
        return seq, out

    async def _every_page(self) -> AsyncIterator[list[str]]:
        """Every device id, in pages of ``_PAGE`` by id."""
        cursor: str | None = None
        while page := await self._ids(cursor, _PAGE):
            yield page
            cursor = page[-1]
            if len(page) < _PAGE:
                return


async def _chunks(ids: list[str]) -> AsyncIterator[list[str]]:
    for start in range(0, len(ids), _PAGE):
        yield ids[start : start + _PAGE]


def _matches(record: DeviceRecord, query: DeviceQuery) -> bool:
    if query.profile is not None and record.profile != query.profile:
        return False
    return query.label is None or record.labels.get(query.label[0]) == query.label[1]
