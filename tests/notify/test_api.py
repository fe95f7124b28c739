"""The webhook, rule and alert routes: refusals coded and counted, secrets kept, audits."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from lastseen.hub.broadcast import StreamFilter
from lastseen.presence import Profile, ProfileRegistry
from tests.notify.conftest import LiveFactory, Receiver

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("http://127.0.0.1:9/x", 403, "webhook_destination_refused"),
        ("http://10.0.0.1/x", 403, "webhook_destination_refused"),
        ("http://169.254.169.254/latest/meta-data", 403, "webhook_destination_refused"),
        ("http://[::1]/x", 403, "webhook_destination_refused"),
        ("http://localhost/x", 403, "webhook_destination_refused"),
        ("ftp://example.com/x", 400, "invalid_webhook"),
        ("http://user:pw@example.com/", 400, "invalid_webhook"),
        ("not a url", 400, "invalid_webhook"),
    ],
)
async def test_ssrf_and_bad_urls_are_refused_and_counted(
    live: LiveFactory, url: str, status: int, code: str
) -> None:
    hub = await live(webhook_allow_private=False)
    async with hub.client() as client:
        answer = await client.post("/v1/webhooks", json={"url": url})
        assert (answer.status_code, answer.json()["code"]) == (status, code)
        assert (await client.get("/v1/webhooks")).json() == {"webhooks": []}
    assert hub.hub.metrics.rejected.get(code) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"url": "http://127.0.0.1/x", "headers": {"Host": "evil"}},
        {"url": "http://127.0.0.1/x", "headers": {"Lastseen-Signature": "v1=0"}},
        {"url": "http://127.0.0.1/x", "headers": {"X-A": "a\r\nB: c"}},
        {"url": "http://127.0.0.1/x", "headers": {f"X-{i}": "v" for i in range(17)}},
        {"url": "http://127.0.0.1/x", "filter": {"to": ["gone"]}},
        {"url": "http://127.0.0.1/x", "filter": {"nope": 1}},
        {"url": "http://127.0.0.1/x", "format": "xml"},
        {"url": "http://127.0.0.1/x", "surprise": True},
        {"filter": {}},
    ],
)
async def test_bad_webhook_bodies_are_refused(live: LiveFactory, body: dict[str, object]) -> None:
    hub = await live()
    async with hub.client() as client:
        answer = await client.post("/v1/webhooks", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] in ("invalid_webhook", "unknown_field")
        assert (await client.get("/v1/webhooks")).json() == {"webhooks": []}


async def test_crud_masks_credentials_audits_and_needs_admin(
    live: LiveFactory, receiver: Receiver
) -> None:
    hub = await live()
    async with hub.client() as client:
        created = (
            await client.post(
                "/v1/webhooks",
                json={
                    "url": receiver.url,
                    "headers": {"Authorization": "Bearer t", "X-Team": "ops"},
                },
            )
        ).json()
        assert created["secret"].startswith("whsec_")
        assert created["headers"] == {"Authorization": "********", "X-Team": "ops"}
        path = f"/v1/webhooks/{created['id']}"
        patched = await client.patch(path, json={"format": "slack", "filter": {"to": ["offline"]}})
        assert patched.status_code == 200
        assert (patched.json()["format"], patched.json()["filter"]["to"]) == ("slack", ["offline"])
        assert "secret" not in (await client.get(path)).json()
        listed = (await client.get("/v1/webhooks")).json()["webhooks"]
        assert [w["id"] for w in listed] == [created["id"]]
        assert "secret" not in listed[0]
        replaced = await client.put(path, json={"url": receiver.url})
        assert replaced.json()["format"] == "json"
        assert replaced.json()["headers"] == {}
        assert (await client.delete(path)).status_code == 200
        assert (await client.get(path)).json()["code"] == "webhook_not_found"
        actions = [r["action"] for r in (await client.get("/v1/audit")).json()["records"]]
        for action in ("webhook.created", "webhook.updated", "webhook.deleted"):
            assert action in actions
        client.headers["Authorization"] = "Bearer nope"
        assert (await client.get("/v1/webhooks")).status_code == 401


async def test_rule_crud_and_codes(live: LiveFactory) -> None:
    hub = await live()
    async with hub.client() as client:
        put = await client.put("/v1/alert-rules/gone", json={"kind": "offline_for", "duration": 2})
        assert put.status_code == 201
        assert put.json()["duration"] == 2
        again = await client.put(
            "/v1/alert-rules/gone", json={"kind": "offline_for", "duration": 3}
        )
        assert again.status_code == 200
        bad = [
            ("gone", {"kind": "offline_for"}),
            ("gone", {"kind": "offline_for", "duration": -1}),
            ("gone", {"kind": "flapping", "count": 0, "window": 1}),
            ("gone", {"kind": "back_online", "duration": 1}),
            ("gone", {"kind": "sometimes"}),
            ("bad name!", {"kind": "back_online"}),
        ]
        for name, body in bad:
            answer = await client.put(f"/v1/alert-rules/{name}", json=body)
            assert (answer.status_code, answer.json()["code"]) == (400, "invalid_alert_rule")
        assert (await client.get("/v1/alert-rules/gone")).json()["duration"] == 3
        assert [r["name"] for r in (await client.get("/v1/alert-rules")).json()["rules"]] == [
            "gone"
        ]
        assert (await client.delete("/v1/alert-rules/gone")).status_code == 200
        assert (await client.delete("/v1/alert-rules/gone")).json()["code"] == "rule_not_found"
        assert (await client.get("/v1/alerts?state=sometimes")).status_code == 400


async def test_offline_longer_than_two_seconds_alerts_once_and_resolves_in_real_time(
    live: LiveFactory, receiver: Receiver
) -> None:
    """The one real-time alert test: stale after 0.2 s, offline after 0.4 s, rule 2 s."""
    hub = await live(profiles=ProfileRegistry([Profile(stale_after=0.2, offline_after=0.4)]))
    async with hub.client() as client:
        await client.put("/v1/alert-rules/gone", json={"kind": "offline_for", "duration": 2})
        await client.post(
            "/v1/webhooks", json={"url": receiver.url, "filter": {"transitions": False}}
        )
        stream = hub.hub.broadcaster.subscribe(StreamFilter())
        await client.post("/v1/devices/pi-9/heartbeat")
        (opened,) = await receiver.wait_for(1, timeout=10)
        body = orjson.loads(opened.body)
        assert (body["type"], body["action"], body["alert"]["rule"]) == ("alert", "opened", "gone")
        assert (await client.get("/v1/alerts?state=open")).json()["alerts"][0][
            "device_id"
        ] == "pi-9"
        await client.post("/v1/devices/pi-9/heartbeat")
        resolved = (await receiver.wait_for(2, timeout=10))[1]
        assert orjson.loads(resolved.body)["action"] == "resolved"
        assert (await client.get("/v1/alerts?state=open")).json()["alerts"] == []
        await asyncio.sleep(0.1)
        kinds = [m[0] for m in stream.drain()]
        assert kinds.count("alert") == 2
        assert "transition" in kinds
    assert len(receiver.requests) == 2
