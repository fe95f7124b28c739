"""End-to-end: the real ``lastseen serve`` with keys, the ``keys`` command, and TLS.

Few and short: the rules are proven in-process (tests/http); these prove the wiring
(printing the first key, persistence across restarts, the CLI on a live hub, real
sockets closing, HTTPS and WSS).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from lastseen.testing import HubProcess

pytestmark = pytest.mark.e2e


def lastseen(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lastseen", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_first_start_prints_one_admin_key_that_survives_restarts_and_the_cli_manages_keys(
    tmp_path: Path,
) -> None:
    hub = HubProcess(tmp_path / "data", env={"LASTSEEN_KEY_REFRESH": "0.2"}, open_auth=False)
    hub.start()
    try:
        admin = hub.printed_key()
        assert admin is not None, hub.log()
        assert "lastseen keys create" in hub.log()
        with hub.client() as anonymous:
            assert anonymous.get("/healthz").json()["auth"] == "keys"
            assert anonymous.get("/v1/devices").status_code == 401
        with hub.client(admin) as client:
            assert client.post("/v1/devices/pi/heartbeat").status_code == 200

        hub.restart()
        assert hub.log().count("lsk_") == 1  # printed once, ever
        with hub.client(admin) as client:
            assert client.get("/v1/devices/pi").status_code == 200

        # A key made on disk while the hub runs is accepted within key_refresh.
        made = lastseen(
            "keys", "create", "--data-dir", str(hub.data_dir), "--role", "read", "--name", "d"
        )
        assert made.returncode == 0, made.stderr
        read = made.stdout.strip()
        deadline = time.monotonic() + 5
        with hub.client(read) as client:
            while client.get("/v1/devices").status_code != 200:
                assert time.monotonic() < deadline, "the running hub never saw the new key"
                time.sleep(0.1)

        # Through the API: list, then revoke; the revoked key's live streams end.
        env = {"LASTSEEN_URL": hub.url, "LASTSEEN_KEY": admin}
        listed = lastseen("keys", "list", "--json", env=env)
        keys = [json.loads(line) for line in listed.stdout.splitlines()]
        read_id = next(k["id"] for k in keys if k["role"] == "read")
        connected, ended = threading.Event(), threading.Event()
        outcome: list[object] = []

        def follow() -> None:
            try:
                url = f"{hub.url}/v1/stream?token={read}"
                with httpx.stream("GET", url, timeout=10) as answer:
                    outcome.append(answer.status_code)
                    for line in answer.iter_lines():
                        if line == ": connected":
                            connected.set()
                outcome.append("ended cleanly")
            except Exception as exc:  # reported by the main thread
                outcome.append(exc)
            ended.set()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        url = hub.url.replace("http", "ws") + f"/v1/ws?token={read}"
        with connect(url, open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
            assert connected.wait(5)
            revoked = lastseen("keys", "revoke", read_id, env=env)
            assert revoked.returncode == 0, revoked.stderr
            assert ended.wait(5), "the SSE stream of a revoked key stayed open"
            assert outcome == [200, "ended cleanly"]
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "key revoked")
        with hub.client(read) as client:
            assert client.get("/v1/devices").status_code == 401
        audit = lastseen("keys", "list", "--all", env=env)
        assert read_id in audit.stdout

        # Keys and device tokens through the API.
        made = lastseen("keys", "create", "--role", "ingest", "--name", "gw", env=env)
        assert made.returncode == 0, made.stderr
        issued = lastseen("keys", "token", "pi-9", env=env)
        assert issued.returncode == 0, issued.stderr
        with hub.client(issued.stdout.strip()) as device:
            assert device.post("/v1/devices/pi-9/heartbeat").status_code == 200
            assert device.post("/v1/devices/pi/heartbeat").status_code == 403
        refused = lastseen("keys", "list", env={**env, "LASTSEEN_KEY": read})
        assert refused.returncode == 1
        assert refused.stderr.startswith("lastseen: unauthorized: ")
    finally:
        hub.stop()


def test_open_mode_says_so_in_the_log_and_healthz(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "data")  # the test default: --open
    hub.start()
    try:
        with hub.client() as client:
            health = client.get("/healthz").json()
        assert health["auth"] == "open"
        assert "warning" in health
        assert "event=auth_disabled" in hub.log()
        assert hub.printed_key() is None
    finally:
        hub.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_and_wss_with_a_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    hub = HubProcess(
        tmp_path / "data",
        "--tls-cert", str(cert), "--tls-key", str(key),
        env={"LASTSEEN_ADMIN_KEY": "tls-admin"},
    )  # fmt: skip
    hub.start()
    try:
        assert hub.url.startswith("https://")
        with hub.client() as client:
            assert client.post("/v1/devices/pi/heartbeat").json()["status"] == "online"
        context = ssl.create_default_context(cafile=str(cert))
        url = hub.url.replace("https", "wss") + "/v1/ws?token=tls-admin"
        with connect(url, ssl=context, open_timeout=5) as ws:
            snapshot = json.loads(ws.recv(timeout=5))
        assert [d["id"] for d in snapshot["devices"]] == ["pi"]
        with pytest.raises(httpx.TransportError):  # plain HTTP is not spoken on this port
            httpx.get(hub.url.replace("https", "http") + "/healthz", timeout=2)
    finally:
        hub.stop()


def test_a_bad_certificate_is_one_clear_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    done = lastseen(
        "serve", "--data-dir", str(tmp_path / "d"), "--tls-cert", str(junk), "--tls-key", str(junk)
    )
    assert done.returncode == 2
    assert done.stderr.startswith("lastseen: --tls-cert")
    assert len(done.stderr.strip().splitlines()) == 1
