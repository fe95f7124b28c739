"""End-to-end: ``lastseen serve --postgres`` (no Redis) keeps everything in PostgreSQL.

Real processes, real HTTP, the machine's PostgreSQL; thresholds are long, so nothing
here waits for a timeout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lastseen.cli import build_parser
from lastseen.testing import HubProcess

pytestmark = pytest.mark.e2e

SLOW = ("--stale-after", "60", "--offline-after", "120", "--flush-interval", "0.1")


def keys_cli(*argv: str) -> int:
    args = build_parser().parse_args(["keys", *argv])
    code: int = args.func(args)
    return code


def test_a_hub_on_postgres_keeps_state_and_history_across_a_restart(
    tmp_path: Path, postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first admin key, made on the database before any hub ran (as an operator would).
    assert keys_cli("create", "--postgres", postgres_dsn, "--role", "admin", "--name", "ops") == 0
    admin = capsys.readouterr().out.strip()
    hub = HubProcess(
        tmp_path / "data", "--postgres", postgres_dsn, *SLOW, env={"LASTSEEN_ADMIN_KEY": admin}
    )
    hub.start()
    try:
        with hub.client() as client:
            beat = client.post("/v1/devices/pi-1/heartbeat", json={"attributes": {"fw": "2"}})
            assert beat.status_code == 200, beat.text
            assert beat.json()["status"] == "online"
            before = client.get("/v1/devices/pi-1").json()
            assert before["status"] == "online"
        hub.restart()
        with hub.client() as client:
            after = client.get("/v1/devices/pi-1").json()
            assert (after["status"], after["status_since"]) == ("online", before["status_since"])
            assert after["attributes"] == {"fw": "2"}
            events = client.get("/v1/events", params={"after": 0}).json()["events"]
            assert [
                (e["seq"], e["device_id"], e["from"], e["to"], e["reason"]) for e in events
            ] == [(1, "pi-1", "unknown", "online", "heartbeat")]
            # The key made on the database works against the hub, and vice versa.
            made = client.post("/v1/keys", json={"role": "read", "name": "wall"})
            assert made.status_code == 201, made.text
    finally:
        hub.stop()
    assert keys_cli("list", "--postgres", postgres_dsn, "--json") == 0
    assert '"name":"wall"' in capsys.readouterr().out
    # Nothing went to the SQLite file of --data-dir.
    assert not (tmp_path / "data" / "lastseen.db").exists()


def test_a_second_hub_on_the_same_database_is_refused(tmp_path: Path, postgres_dsn: str) -> None:
    first = HubProcess(tmp_path / "one", "--postgres", postgres_dsn, *SLOW)
    first.start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "lastseen", "serve", "--open", "--port", "0",
             "--postgres", postgres_dsn],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert second.returncode == 1
        assert "in use by another lastseen serve" in second.stderr
    finally:
        first.stop()
