"""Uptime routes and dashboard files, in-process with a manual clock."""

from __future__ import annotations

import pytest

from lastseen.http import uptime
from lastseen.http.headers import CSP
from lastseen.security import Role
from tests.http.conftest import Running

pytestmark = pytest.mark.anyio


async def test_device_and_fleet_uptime_follow_the_history(running: Running) -> None:
    async with running.admin_client() as admin:
        await admin.put("/v1/devices/idle")
        assert (await admin.post("/v1/devices/pi/heartbeat")).status_code == 200
        running.clock.advance(100.0)  # past stale_after (40): goes stale at 40
        await running.hub.sweep()
        await admin.put("/v1/devices/idle")  # its commit follows the sweep's
        answer = await admin.get("/v1/devices/pi/uptime", params={"window": "100s"})
        assert answer.status_code == 200
        body = answer.json()
        assert body["fractions"] == {"online": 0.4, "stale": 0.6, "offline": 0.0, "unknown": 0.0}
        assert body["transitions"] == 2
        assert body["complete"] is True
        fleet = (await admin.get("/v1/uptime", params={"window": "100s"})).json()
        assert fleet["devices"] == 2
        assert fleet["fractions"]["unknown"] == pytest.approx(0.5)
        assert fleet["current"] == {"online": 0, "stale": 1, "offline": 0, "unknown": 1}
        assert (await admin.get("/v1/uptime")).json()["window"] == 86400


async def test_bad_windows_and_unknown_devices_are_refused(running: Running) -> None:
    async with running.admin_client() as admin:
        bad = await admin.get("/v1/uptime", params={"window": "1w"})
        assert bad.status_code == 400
        assert bad.json()["code"] == "invalid_window"
        missing = await admin.get("/v1/devices/nope/uptime")
        assert missing.status_code == 404
    assert running.rejected("invalid_window") == 1


async def test_a_read_key_may_read_uptime(running: Running) -> None:
    read = await running.key(Role.READ)
    async with running.client(read) as client:
        assert (await client.get("/v1/uptime")).status_code == 200


async def test_the_dashboard_is_served_with_types_etags_and_the_csp(running: Running) -> None:
    async with running.client() as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP
        assert page.headers["cache-control"] == "no-cache"
        script = await client.get("/dashboard/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        again = await client.get(
            "/dashboard/app.js", headers={"If-None-Match": script.headers["etag"]}
        )
        assert again.status_code == 304
        assert (
            (await client.get("/dashboard/style.css"))
            .headers["content-type"]
            .startswith("text/css")
        )
        assert (await client.get("/dashboard/nope.js")).status_code == 404


async def test_a_history_past_the_read_cap_is_answered_incomplete(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uptime, "PAGE", 2)
    monkeypatch.setattr(uptime, "MAX_EVENTS", 4)
    async with running.admin_client() as admin:
        for _ in range(3):  # online, stale, offline: 3 transitions each round
            assert (await admin.post("/v1/devices/pi/heartbeat")).status_code == 200
            running.clock.advance(1000.0)
            await running.hub.sweep()
        await admin.put("/v1/devices/idle")  # its commit follows the sweeps'
        device = (await admin.get("/v1/devices/pi/uptime")).json()
        fleet = (await admin.get("/v1/uptime")).json()
        monkeypatch.setattr(uptime, "MAX_EVENTS", 100)
        whole = (await admin.get("/v1/devices/pi/uptime")).json()
    assert device["complete"] is False
    assert device["transitions"] == 4
    assert fleet["complete"] is False
    assert whole["complete"] is True
    assert whole["transitions"] == 9
