"""The bridge against the real Mosquitto, with an in-process hub (real time, short)."""

from __future__ import annotations

import json
import uuid

import pytest

from lastseen.mqtt.wire import RawDevice, Will
from tests.mqtt.conftest import Bridged, retained, until

pytestmark = pytest.mark.anyio


def device(broker: tuple[str, int], **kwargs: object) -> RawDevice:
    return RawDevice(*broker, f"dev-{uuid.uuid4().hex[:8]}", **kwargs)  # type: ignore[arg-type]


async def test_telemetry_makes_a_device_online_with_its_attributes(
    bridged: Bridged, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    pi = device(mqtt_broker)
    pi.publish(f"{mqtt_prefix}pi-1/telemetry", b'{"temp": 21.5}')
    pi.disconnect()
    # Counted once the hub confirmed the change (its commit), a moment after the state.
    await until(lambda: bridged.bridge.metrics.messages.get("telemetry") == 1)
    assert bridged.status("pi-1") == "online"
    entry = bridged.hub.entries["pi-1"]
    assert entry.state.source is not None
    assert entry.state.source.value == "telemetry"
    assert entry.attributes == {"temp": 21.5}


async def test_a_killed_device_goes_offline_by_its_will(
    bridged: Bridged, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    status = f"{mqtt_prefix}pi-2/status"
    pi = device(mqtt_broker, keepalive=2, will=Will(status, b'{"state":"offline","session":1}'))
    pi.publish(status, b'{"state":"online","session":1}')
    await until(lambda: bridged.status("pi-2") == "online")
    pi.abort()  # no DISCONNECT: the broker publishes the will
    await until(lambda: bridged.status("pi-2") == "offline")
    assert bridged.hub.entries["pi-2"].state.reason is not None
    assert bridged.hub.entries["pi-2"].state.reason.value == "disconnected"


async def test_a_clean_disconnect_after_offline_status_is_offline_at_once(
    bridged: Bridged, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    status = f"{mqtt_prefix}pi-3/status"
    pi = device(mqtt_broker, will=Will(status, b"offline"))
    pi.publish(status, b"online")
    await until(lambda: bridged.status("pi-3") == "online")
    pi.publish(status, b"offline")
    pi.disconnect()
    await until(lambda: bridged.status("pi-3") == "offline", timeout=2.0)


async def test_a_late_will_of_an_older_session_is_ignored(
    bridged: Bridged, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    status = f"{mqtt_prefix}pi-4/status"
    pi = device(mqtt_broker)
    pi.publish(status, b'{"state":"online","session":7}')
    pi.publish(status, b'{"state":"online","session":8}')  # reconnected
    pi.publish(status, b'{"state":"offline","session":7}')  # the old will, late
    pi.publish(f"{mqtt_prefix}pi-4/heartbeat", b"")  # a marker after it
    pi.disconnect()
    await until(lambda: bridged.bridge.metrics.messages.get("heartbeat") == 1)
    assert bridged.status("pi-4") == "online"
    assert bridged.hub.entries["pi-4"].state.session == 8


async def test_bad_payloads_change_nothing_and_are_counted(
    bridged: Bridged, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    pi = device(mqtt_broker)
    bad = [
        ("pi-5/heartbeat", b"\xff\xfe"),
        ("pi-5/heartbeat", b"x" * 70_000),
        ("pi-5/heartbeat", b"{nope"),
        ("bad id!/heartbeat", b""),
        ("pi-5/status", b"maybe"),
        ("pi-5/heartbeat", b'{"attributs": {}}'),
    ]
    for topic, payload in bad:
        pi.publish(mqtt_prefix + topic, payload)
    pi.publish(f"{mqtt_prefix}marker/heartbeat", b"")
    pi.disconnect()
    await until(lambda: "marker" in bridged.hub.entries)
    assert set(bridged.hub.entries) == {"marker"}
    rejected = bridged.bridge.metrics.rejected
    assert {k[0]: v for k, v in rejected.values.items()} == {
        "not_utf8": 1,
        "oversize": 1,
        "invalid_json": 1,
        "invalid_device_id": 1,
        "invalid_status": 1,
        "invalid_payload": 1,
    }


async def test_retained_presence_follows_the_hub_and_deletion_clears_it(
    bridged: Bridged, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> None:
    pi = device(mqtt_broker)
    pi.publish(f"{mqtt_prefix}pi-6/heartbeat", b"")
    pi.publish(f"{mqtt_prefix}pi-7/status", b"offline")
    pi.disconnect()
    await until(lambda: bridged.bridge.metrics.published.get("availability") >= 2)
    found = await retained(*mqtt_broker, mqtt_prefix)
    assert found[f"{mqtt_prefix}pi-6/availability"] == b"online"
    assert found[f"{mqtt_prefix}pi-7/availability"] == b"offline"
    presence = json.loads(found[f"{mqtt_prefix}pi-7/presence"])
    assert presence["status"] == "offline"
    assert presence["reason"] == "disconnected"
    await bridged.hub.delete_device("pi-6")
    await until(lambda: bridged.bridge.metrics.published.get("availability") >= 3)
    found = await retained(*mqtt_broker, mqtt_prefix)
    assert f"{mqtt_prefix}pi-6/availability" not in found
    assert f"{mqtt_prefix}pi-7/availability" in found
