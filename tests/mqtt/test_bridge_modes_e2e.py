"""Strict mode, discovery and stale retained topics, against the real Mosquitto."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import aiomqtt
import pytest

from lastseen.mqtt import outbound
from lastseen.mqtt.wire import RawDevice
from tests.mqtt.conftest import bridge_on, clear_retained, retained, until

pytestmark = pytest.mark.anyio


def device(broker: tuple[str, int]) -> RawDevice:
    return RawDevice(*broker, f"dev-{uuid.uuid4().hex[:8]}")


async def test_retained_topics_of_devices_deleted_while_away_are_cleared_on_connect(
    tmp_path: Path, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    host, port = mqtt_broker
    async with aiomqtt.Client(host, port, identifier=f"old-{uuid.uuid4().hex[:6]}") as old:
        # What a previous hub left behind for a device this hub does not have.
        await old.publish(f"{mqtt_prefix}ghost/presence", b'{"status":"online"}', 1, retain=True)
        await old.publish(f"{mqtt_prefix}ghost/availability", b"online", 1, retain=True)
    async with bridge_on(tmp_path, mqtt_broker, mqtt_prefix) as bridged:
        pi = device(mqtt_broker)
        pi.publish(f"{mqtt_prefix}pi/heartbeat", b"")
        pi.disconnect()
        await until(lambda: bridged.bridge.metrics.published.get("availability") >= 2)
        found = await retained(host, port, mqtt_prefix)
        assert f"{mqtt_prefix}ghost/presence" not in found
        assert f"{mqtt_prefix}ghost/availability" not in found
        assert found[f"{mqtt_prefix}pi/availability"] == b"online"


async def test_strict_mode_refuses_unknown_devices_and_takes_registered_ones(
    tmp_path: Path, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    async with bridge_on(tmp_path, mqtt_broker, mqtt_prefix, mqtt_strict=True) as bridged:
        await bridged.hub.put_device("known")
        pi = device(mqtt_broker)
        pi.publish(f"{mqtt_prefix}stranger/heartbeat", b"")
        pi.publish(f"{mqtt_prefix}stranger/status", b"online")
        pi.publish(f"{mqtt_prefix}known/heartbeat", b"")
        pi.disconnect()
        await until(lambda: bridged.bridge.metrics.messages.get("heartbeat") == 1)
        await until(lambda: bridged.bridge.metrics.rejected.get("unknown_device") == 2)
        assert "stranger" not in bridged.hub.entries
        assert bridged.status("known") == "online"


async def test_discovery_publishes_a_connectivity_sensor_per_device(
    tmp_path: Path, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    discovery = f"ha-{uuid.uuid4().hex[:8]}/"
    options = {"mqtt_discovery": True, "mqtt_discovery_prefix": discovery}
    try:
        async with bridge_on(tmp_path, mqtt_broker, mqtt_prefix, **options) as bridged:
            pi = device(mqtt_broker)
            pi.publish(f"{mqtt_prefix}pi.9/heartbeat", b"")
            pi.disconnect()
            await until(lambda: bridged.bridge.metrics.published.get("discovery") >= 1)
            found = await retained(*mqtt_broker, discovery)
            topic = f"{discovery}binary_sensor/{outbound.object_id('pi.9')}/connectivity/config"
            config = json.loads(found[topic])
            assert config["device_class"] == "connectivity"
            assert config["state_topic"] == f"{mqtt_prefix}pi.9/availability"
    finally:
        await clear_retained(*mqtt_broker, discovery)
