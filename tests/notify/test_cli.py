"""``lastseen webhooks`` against a real hub."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lastseen.testing import HubProcess


def _cli(hub: HubProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lastseen", "webhooks", *args, "--url", hub.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_add_list_deliveries_replay_remove(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "data", "--webhook-allow-private")
    hub.start()
    try:
        added = _cli(hub, "add", "http://127.0.0.1:9/hook", "--to", "offline", "--header", "X-A=b")
        assert added.returncode == 0, added.stderr
        assert "secret (shown only this once): whsec_" in added.stdout
        webhook_id = added.stdout.split()[1]
        listed = _cli(hub, "list")
        assert webhook_id in listed.stdout
        assert "http://127.0.0.1:9/hook" in listed.stdout
        assert _cli(hub, "deliveries", webhook_id, "--status", "dead").returncode == 0
        assert _cli(hub, "replay", webhook_id).stdout.strip() == "replayed 0"
        bad = _cli(hub, "add", "ftp://x", "--header", "oops")
        assert bad.returncode != 0
        assert "NAME=VALUE" in bad.stderr
        assert _cli(hub, "remove", webhook_id).returncode == 0
        gone = _cli(hub, "remove", webhook_id)
        assert gone.returncode != 0
        assert "webhook_not_found" in gone.stderr
    finally:
        hub.stop()
