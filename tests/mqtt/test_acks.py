"""QoS 1 acknowledgements leave only after the hub applied the batch (no broker)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from lastseen.hub.core import Hub
from lastseen.mqtt.bridge import MqttBridge
from lastseen.settings import load_settings
from lastseen.store.sqlite import SQLiteStore
from tests.mqtt.test_flow import FakeFeed

pytestmark = pytest.mark.anyio


async def test_pubacks_follow_the_hub_call_on_the_connection_of_origin(tmp_path: Path) -> None:
    settings = load_settings({"mqtt": "mqtt://127.0.0.1:1", "mqtt_prefix": "p/"}, environ={})
    hub = Hub(settings, SQLiteStore(tmp_path / "hub.db"))
    await hub.start()
    try:
        bridge = MqttBridge(hub, settings, hub.metrics.registry)
        first, second = FakeFeed(), FakeFeed()
        acked_when_applied: list[list[int]] = []
        real = hub.heartbeat_statuses

        async def heartbeat_statuses(
            items: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]],
        ) -> Sequence[object]:
            acked_when_applied.append(first.acked + second.acked)
            return await real(items)

        hub.heartbeat_statuses = heartbeat_statuses  # type: ignore[method-assign]
        await bridge._apply_chunks(
            [
                (first, [("p/a/heartbeat", b"", False, 5), ("p/b/heartbeat", b"", False, 0)]),
                (
                    second,
                    [("p/c/heartbeat", b"", False, 9), ("p/bad id/heartbeat", b"", False, 10)],
                ),
            ]
        )
        assert acked_when_applied == [[]]
        assert first.acked == [5]  # QoS 0 (packet id 0) is never acknowledged
        assert second.acked == [9, 10]  # a rejected message was processed: acknowledged too
        assert hub.entries["c"].state.status.value == "online"
    finally:
        await hub.stop()
