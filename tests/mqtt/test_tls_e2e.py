"""``mqtts://`` with a username and password, against a Mosquitto this test starts.

The broker listens with TLS on a free loopback port, with a self-signed certificate
(the ``openssl`` command) and a password file (``mosquitto_passwd``), and is stopped
at the end; the shared broker is never touched.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from lastseen.testing import free_port
from tests.mqtt.conftest import running_bridge

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not all(shutil.which(c) for c in ("mosquitto", "mosquitto_passwd", "openssl")),
        reason="needs the mosquitto, mosquitto_passwd and openssl commands",
    ),
]
MOSQUITTO = shutil.which("mosquitto") or "mosquitto"


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """(port, CA certificate) of a TLS Mosquitto requiring user ``hub`` / ``s3cret``."""
    cert, key, passwords = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "passwd"
    run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    run("mosquitto_passwd", "-b", "-c", str(passwords), "hub", "s3cret")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"user {Path.home().owner()}\npersistence false\nallow_anonymous false\n"
        f"password_file {passwords}\nlistener {port} 127.0.0.1\n"
        f"certfile {cert}\nkeyfile {key}\n"
    )
    broker = subprocess.Popen(
        [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if broker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.05)
        yield port, cert
    finally:
        broker.terminate()
        broker.wait(timeout=10)


async def test_mqtts_with_credentials_carries_both_ways(
    tmp_path: Path, tls_broker: tuple[int, Path]
) -> None:
    port, cert = tls_broker
    prefix = f"tls-{uuid.uuid4().hex[:6]}/"
    url = f"mqtts://hub:s3cret@127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(cert))
    async with running_bridge(tmp_path, url, prefix, mqtt_ca=str(cert)) as bridged:
        async with aiomqtt.Client(
            "127.0.0.1", port, username="hub", password="s3cret", tls_context=context
        ) as pi:
            await pi.subscribe(f"{prefix}pi/availability")
            await pi.publish(f"{prefix}pi/heartbeat", b"", qos=1)
            async with asyncio.timeout(5):
                async for message in pi.messages:
                    assert message.payload == b"online"
                    break
        assert bridged.status("pi") == "online"


async def test_a_wrong_password_is_refused_and_not_ready(
    tmp_path: Path, tls_broker: tuple[int, Path]
) -> None:
    port, cert = tls_broker
    url = f"mqtts://hub:wrong@127.0.0.1:{port}"
    with pytest.raises(TimeoutError):
        async with running_bridge(tmp_path, url, "x/", mqtt_ca=str(cert)):
            pass  # pragma: no cover - never ready
