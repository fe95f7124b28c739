"""``lastseen serve --mqtt`` processes: retained state after a restart, shared subscriptions."""

# The hubs are other processes: a blocking HTTP call or a polling sleep here stalls
# only this test, never what it measures.
# ruff: noqa: ASYNC110, ASYNC210
from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import httpx
import pytest

from lastseen.mqtt.wire import RawDevice
from lastseen.testing import HubProcess
from tests.mqtt.conftest import clear_retained, retained

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def serve(tmp: Path, name: str, broker: tuple[str, int], prefix: str, group: str) -> HubProcess:
    return HubProcess(
        tmp / name,
        "--mqtt", f"mqtt://{broker[0]}:{broker[1]}", "--mqtt-prefix", prefix,
        "--mqtt-group", group, "--log-level", "warning",
    )  # fmt: skip


def counter(hub: HubProcess, kind: str) -> int:
    text = httpx.get(hub.url + "/metrics").text
    found = re.search(rf'^lastseen_mqtt_messages_total{{kind="{kind}"}} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


async def wait_ready(hub: HubProcess) -> None:
    async with asyncio.timeout(10):
        while httpx.get(hub.url + "/readyz").status_code != 200:
            await asyncio.sleep(0.05)


async def test_retained_state_matches_the_hub_after_a_restart(
    tmp_path: Path, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    hub = serve(tmp_path, "data", mqtt_broker, mqtt_prefix, uuid.uuid4().hex[:8])
    hub.start()
    try:
        await wait_ready(hub)
        pi = RawDevice(*mqtt_broker, f"dev-{uuid.uuid4().hex[:8]}")
        pi.publish(f"{mqtt_prefix}a/heartbeat", b"")
        pi.publish(f"{mqtt_prefix}b/status", b"offline")
        pi.disconnect()
        async with asyncio.timeout(10):
            while counter(hub, "heartbeat") + counter(hub, "status") < 2:
                await asyncio.sleep(0.05)
        hub.stop()
        # While the hub is down its retained state is wiped; the restart must restore it.
        await clear_retained(*mqtt_broker, mqtt_prefix)
        hub.start()
        await wait_ready(hub)
        devices = {
            d["id"]: d["status"] for d in httpx.get(hub.url + "/v1/devices").json()["devices"]
        }
        assert devices == {"a": "online", "b": "offline"}
        async with asyncio.timeout(10):
            while True:
                found = await retained(*mqtt_broker, mqtt_prefix, wait=0.3)
                if len(found) == 4:
                    break
        assert found[f"{mqtt_prefix}a/availability"] == b"online"
        assert found[f"{mqtt_prefix}b/availability"] == b"offline"
        assert b'"status":"offline"' in found[f"{mqtt_prefix}b/presence"]
    finally:
        hub.stop()
        await clear_retained(*mqtt_broker, mqtt_prefix)


async def test_two_hubs_on_a_shared_subscription_process_each_message_once(
    tmp_path: Path, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    group = uuid.uuid4().hex[:8]
    hubs = [serve(tmp_path, f"data{i}", mqtt_broker, mqtt_prefix, group) for i in range(2)]
    for hub in hubs:
        hub.start()
    try:
        for hub in hubs:
            await wait_ready(hub)
        sent = 400
        pi = RawDevice(*mqtt_broker, f"dev-{uuid.uuid4().hex[:8]}")
        pi.publish_many([(f"{mqtt_prefix}d{i}/heartbeat", b"") for i in range(sent)], qos=1)
        pi.disconnect()
        async with asyncio.timeout(15):
            while sum(counter(hub, "heartbeat") for hub in hubs) < sent:
                await asyncio.sleep(0.05)
        counts = [counter(hub, "heartbeat") for hub in hubs]
        assert sum(counts) == sent
        seen = [
            {d["id"] for d in httpx.get(h.url + "/v1/devices?limit=1000").json()["devices"]}
            for h in hubs
        ]
        assert not seen[0] & seen[1]
        assert seen[0] | seen[1] == {f"d{i}" for i in range(sent)}
        assert all(counts), f"the broker gave every message to one hub: {counts}"
    finally:
        for hub in hubs:
            hub.stop()
        await clear_retained(*mqtt_broker, mqtt_prefix)


async def test_readyz_reflects_a_broker_that_is_not_there(tmp_path: Path) -> None:
    port = 1  # nothing listens there: connection refused, retried with backoff
    hub = HubProcess(tmp_path / "data", "--mqtt", f"mqtt://127.0.0.1:{port}")
    hub.start()
    try:
        answer = httpx.get(hub.url + "/readyz")
        assert answer.status_code == 503
        assert answer.json() == {"ready": False, "reason": "mqtt"}
        assert httpx.get(hub.url + "/healthz").status_code == 200
    finally:
        assert hub.stop() == 0
