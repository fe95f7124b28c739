"""An in-process hub with its MQTT bridge on the real broker, and retained-topic helpers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from lastseen.hub.core import Hub
from lastseen.mqtt.bridge import MqttBridge
from lastseen.settings import load_settings
from lastseen.store.sqlite import SQLiteStore


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait, polling, until ``check()`` holds (end-to-end tests only)."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - the state lives in another component
            await asyncio.sleep(0.02)


async def retained(host: str, port: int, prefix: str, wait: float = 0.4) -> dict[str, bytes]:
    """Every retained message under ``prefix`` now, by topic."""
    found: dict[str, bytes] = {}
    async with aiomqtt.Client(host, port, identifier=f"probe-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(prefix + "#")
        try:
            async with asyncio.timeout(wait):
                async for message in client.messages:
                    if message.retain and isinstance(message.payload, bytes):
                        found[message.topic.value] = message.payload
        except TimeoutError:
            pass
    return found


async def clear_retained(host: str, port: int, prefix: str) -> None:
    topics = await retained(host, port, prefix, wait=0.3)
    if not topics:
        return
    async with aiomqtt.Client(host, port, identifier=f"clear-{uuid.uuid4().hex[:8]}") as client:
        for topic in topics:
            await client.publish(topic, b"", qos=1, retain=True)


class Bridged:
    def __init__(self, hub: Hub, bridge: MqttBridge) -> None:
        self.hub = hub
        self.bridge = bridge

    def status(self, device_id: str) -> str | None:
        entry = self.hub.entries.get(device_id)
        return None if entry is None else entry.state.status.value


@contextlib.asynccontextmanager
async def running_bridge(
    tmp_path: Path, broker_url: str, prefix: str, **options: Any
) -> AsyncIterator[Bridged]:
    """An in-process hub and its bridge, connected; ``options`` are settings."""
    settings = load_settings(
        {
            "mqtt": broker_url,
            "mqtt_prefix": prefix,
            "mqtt_group": uuid.uuid4().hex[:8],
            "stale_after": 30,
            "offline_after": 60,
            **options,
        },
        environ={},
    )
    hub = Hub(settings, SQLiteStore(tmp_path / f"hub-{uuid.uuid4().hex[:6]}.db"))
    await hub.start()
    bridge = MqttBridge(hub, settings, hub.metrics.registry)
    await bridge.start()
    try:
        await until(bridge.ready)
        yield Bridged(hub, bridge)
    finally:
        await bridge.stop()
        await hub.stop()


@contextlib.asynccontextmanager
async def bridge_on(
    tmp_path: Path, broker: tuple[str, int], prefix: str, **options: Any
) -> AsyncIterator[Bridged]:
    """``running_bridge`` on a plain broker; its retained topics under ``prefix`` are
    cleared afterwards."""
    host, port = broker
    try:
        async with running_bridge(tmp_path, f"mqtt://{host}:{port}", prefix, **options) as b:
            yield b
    finally:
        await clear_retained(host, port, prefix)


@pytest.fixture
async def bridged(
    tmp_path: Path, mqtt_broker: tuple[str, int], mqtt_prefix: str
) -> AsyncIterator[Bridged]:
    async with bridge_on(tmp_path, mqtt_broker, mqtt_prefix) as running:
        yield running
