"""Webhook delivery end to end: the app in-process, a real receiver on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest

from lastseen.notify.payloads import sign
from tests.notify.conftest import LiveFactory, Receiver

pytestmark = pytest.mark.anyio

DOCS = Path(__file__).parents[2] / "docs" / "notifications.md"


def docs_verifier() -> dict[str, object]:
    """Run the receiver snippet of docs/notifications.md and return its namespace."""
    text = DOCS.read_text()
    start = text.index("```python verify\n") + len("```python verify\n")
    code = text[start : text.index("```", start)]
    namespace: dict[str, object] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return namespace


async def _subscribe(client: httpx.AsyncClient, url: str, **extra: object) -> dict[str, object]:
    answer = await client.post("/v1/webhooks", json={"url": url, **extra})
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


async def test_a_transition_arrives_signed_and_the_docs_receiver_verifies_it(
    live: LiveFactory, receiver: Receiver
) -> None:
    hub = await live()
    async with hub.client() as client:
        created = await _subscribe(client, receiver.url)
        secret = str(created["secret"])
        assert (await client.get(f"/v1/webhooks/{created['id']}")).json().get("secret") is None
        assert (await client.post("/v1/devices/pi-1/heartbeat")).status_code == 200
        (request,) = await receiver.wait_for(1)
    body = orjson.loads(request.body)
    assert body["type"] == "transition"
    assert (body["device_id"], body["from"], body["to"]) == ("pi-1", "unknown", "online")
    assert request.headers["lastseen-event-id"] == str(body["seq"])
    timestamp = int(request.headers["lastseen-timestamp"])
    assert request.headers["lastseen-signature"] == sign(secret, timestamp, request.body)
    verify = docs_verifier()["verify"]
    assert callable(verify)
    assert verify(secret, request.headers, request.body, now=timestamp)
    assert not verify(secret, request.headers, request.body + b" ", now=timestamp)
    assert not verify("whsec_other", request.headers, request.body, now=timestamp)
    assert not verify(secret, request.headers, request.body, now=timestamp + 3600)


async def test_failing_twice_then_succeeding_gives_one_success_with_one_event_id(
    live: LiveFactory, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    hub = await live()
    async with hub.client() as client:
        created = await _subscribe(client, receiver.url)
        await client.post("/v1/devices/pi-2/heartbeat")
        requests = await receiver.wait_for(3)
        ids = {r.headers["lastseen-event-id"] for r in requests}
        assert len(ids) == 1
        assert [r.headers["lastseen-attempt"] for r in requests] == ["1", "2", "3"]
        for _ in range(100):
            rows = (await client.get(f"/v1/webhooks/{created['id']}/deliveries")).json()
            if rows["deliveries"][0]["status"] == "delivered":
                break
            await asyncio.sleep(0.02)
    (delivery,) = rows["deliveries"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == (
        "delivered",
        3,
        200,
    )
    assert hub.notifier.metrics.deliveries.get("delivered") == 1
    assert hub.notifier.metrics.retries.get() == 2
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 3


async def test_past_the_budget_a_delivery_is_dead_and_replay_delivers_it(
    live: LiveFactory, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500, 500]
    hub = await live()
    async with hub.client() as client:
        created = await _subscribe(client, receiver.url)
        base = f"/v1/webhooks/{created['id']}"
        await client.post("/v1/devices/pi-3/heartbeat")
        await receiver.wait_for(3)
        for _ in range(100):
            dead = (await client.get(f"{base}/deliveries?status=dead")).json()["deliveries"]
            if dead:
                break
            await asyncio.sleep(0.02)
        (letter,) = dead
        assert letter["attempts"] == 3
        assert letter["last_status"] == 500
        assert len(letter["last_response"].encode()) <= 1024
        metrics = (await client.get("/metrics")).text
        assert "lastseen_webhook_dead_letters 1" in metrics
        answer = await client.post(f"{base}/deliveries/{letter['id']}/replay")
        assert answer.json() == {"replayed": 1}
        requests = await receiver.wait_for(4)
        assert requests[-1].headers["lastseen-event-id"] == requests[0].headers["lastseen-event-id"]
        again = await client.post(f"{base}/replay")
        assert again.json() == {"replayed": 0}
