"""End-to-end: ``HubClient`` against a real ``lastseen serve`` process.

The ``hub`` fixture (tests/conftest.py) runs a hub with stale after 0.5 s and
offline after 1 s; these tests use real time, with generous bounds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Protocol

import anyio
import pytest

from lastseen.client import HubClient, HubError, StreamEvent
from lastseen.testing import HubProcess

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


class Hub(Protocol):
    url: str
    admin_key: str | None


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_register_beat_list_and_delete(hub: Hub) -> None:
    a, b, c = unique("a"), unique("b"), unique("c")
    async with HubClient(hub.url, hub.admin_key) as client:
        created = await client.put_device(a, labels={"site": "lab"})
        assert (created.id, created.status, created.labels) == (a, "unknown", {"site": "lab"})
        updated = await client.put_device(a, labels={"site": "roof"})
        assert updated.labels == {"site": "roof"}
        await client.put_device(b)
        await client.put_device(c)

        ack = await client.heartbeat(a, attributes={"fw": "1.2"}, metrics={"temp": 21.5})
        assert (ack.device_id, ack.status) == (a, "online")
        device = await client.get_device(a)
        assert device.status == "online"
        assert device.last_seen is not None
        assert device.attributes == {"fw": "1.2"}

        batch = await client.heartbeats([b, c])
        assert (batch.accepted, batch.rejected) == (2, 0)
        assert [r.device_id for r in batch.results] == [b, c]

        # Pages of one: the iterator must follow the cursor through all three.
        async with aclosing(client.list_devices(limit=1)) as devices:
            ids = [d.id async for d in devices]
        assert {a, b, c} <= set(ids)
        assert ids == sorted(ids)
        async with aclosing(client.list_devices(label=("site", "roof"))) as devices:
            assert [d.id async for d in devices] == [a]

        page = await client.events(after=0, limit=1000)
        assert any(e.device_id == a and e.to_status == "online" for e in page.events)
        assert [e.seq for e in page.events] == sorted(e.seq for e in page.events)

        await client.delete_device(a)
        with pytest.raises(HubError) as caught:
            await client.get_device(a)
        assert (caught.value.status, caught.value.code) == (404, "not_found")


async def test_stream_replays_then_follows_live_timeouts(hub: Hub) -> None:
    device_id = unique("stream")
    seen: list[StreamEvent] = []
    async with HubClient(hub.url, hub.admin_key) as client:
        await client.put_device(device_id)
        await client.heartbeat(device_id)
        with anyio.fail_after(15):
            async with aclosing(client.stream(after=0, devices=[device_id])) as events:
                async for event in events:
                    if event.event != "transition":
                        continue
                    seen.append(event)
                    if event.transition().to_status == "offline":
                        break
    transitions = [e.transition() for e in seen]
    assert [(t.from_status, t.to_status) for t in transitions] == [
        ("unknown", "online"),
        ("online", "stale"),
        ("stale", "offline"),
    ]
    assert [e.id for e in seen] == [str(t.seq) for t in transitions]


@pytest.fixture
def keyed_hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A real hub that requires an admin key."""
    process = HubProcess(tmp_path / "keyed", env={"LASTSEEN_ADMIN_KEY": "e2e-admin-key"})
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def test_keys(keyed_hub: Hub) -> None:
    device_id = unique("keyed")
    async with HubClient(keyed_hub.url, keyed_hub.admin_key) as client:
        assert (await client.put_device(device_id)).id == device_id
    for key in (None, "not-the-key"):
        async with HubClient(keyed_hub.url, key) as client:
            with pytest.raises(HubError) as caught:
                await client.get_device(device_id)
        assert caught.value.status in (401, 403)
        assert not caught.value.retryable
