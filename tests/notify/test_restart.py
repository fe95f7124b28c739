"""A delivery queued before a restart of a real ``lastseen serve`` still arrives."""

from __future__ import annotations

from pathlib import Path

from lastseen.testing import HubProcess
from tests.notify.threaded import Hook, last_status, until

ADMIN = "restart-admin-key"


def test_a_restart_mid_retry_still_delivers(tmp_path: Path, hook: Hook) -> None:
    hook.statuses = [500]
    env = {
        "LASTSEEN_ADMIN_KEY": ADMIN,
        # Full jitter under 4 s: the retry usually comes after the restart below.
        "LASTSEEN_WEBHOOK_BACKOFF": "4",
        "LASTSEEN_WEBHOOK_BACKOFF_MAX": "4",
    }
    hub = HubProcess(tmp_path / "data", "--webhook-allow-private", env=env)
    hub.start()
    try:
        with hub.client() as client:
            created = client.post("/v1/webhooks", json={"url": hook.url}).json()
            client.post("/v1/devices/pi-r/heartbeat")
        until(lambda: len(hook.seen()) == 1)
        hub.restart()
        until(lambda: len(hook.seen()) == 2)
        with hub.client() as client:
            until(lambda: last_status(client, created["id"]) == "delivered")
        first, second = (r.headers.get("lastseen-event-id", "") for r in hook.seen())
        assert first == second != ""
    finally:
        hub.stop()
