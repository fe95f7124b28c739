"""One slow receiver never delays another; bodies in both formats."""

from __future__ import annotations

import orjson
import pytest

from lastseen.notify.models import Alert, AlertKind, AlertState, Format
from lastseen.notify.payloads import alert_body, sign, transition_body
from tests.notify.conftest import LiveFactory, start_receiver

pytestmark = pytest.mark.anyio


async def test_a_slow_receiver_does_not_delay_a_fast_one(live: LiveFactory) -> None:
    async with start_receiver() as slow, start_receiver() as fast:
        slow.delay = 1.5
        hub = await live(webhook_subscription_concurrency=1, webhook_timeout=5.0)
        async with hub.client() as client:
            for receiver in (slow, fast):
                answer = await client.post("/v1/webhooks", json={"url": receiver.url})
                assert answer.status_code == 201
            for i in range(4):
                await client.post(f"/v1/devices/d{i}/heartbeat")
            await fast.wait_for(4, timeout=10)
            # The slow one holds its own (single) slot for 1.5 s per delivery; the fast
            # one's four deliveries went out meanwhile, not queued behind it.
            answered_by_slow = len(slow.requests)
            await slow.wait_for(2, timeout=10)
    assert answered_by_slow <= 1


def test_slack_and_json_bodies() -> None:
    event = {"seq": 7, "device_id": "pi", "from": "online", "to": "offline",
             "at": "2026-11-23T07:38:23.123Z", "reason": "timeout:offline_after",
             "source": "timeout", "flapping": False}  # fmt: skip
    own = orjson.loads(transition_body(Format.JSON, event, {"site": "x"}, "default"))
    assert (own["type"], own["id"], own["device"]["labels"]) == ("transition", "7", {"site": "x"})
    slack = orjson.loads(transition_body(Format.SLACK, event, {}, "default"))
    assert "pi is offline" in slack["text"]
    assert slack["blocks"][0]["text"]["text"] == slack["text"]
    alert = Alert("r/pi/1", "r", AlertKind.OFFLINE_FOR, "pi", AlertState.OPEN, 1.0, reason="x")
    body = orjson.loads(alert_body(Format.JSON, "opened", alert, "alert:r/pi/1:opened"))
    assert (body["type"], body["action"], body["alert"]["state"]) == ("alert", "opened", "open")
    assert (
        "alert r opened for pi"
        in orjson.loads(alert_body(Format.SLACK, "opened", alert, "e"))["text"]
    )
    assert sign("k", 1, b"{}") == sign("k", 1, b"{}") != sign("k", 2, b"{}")
