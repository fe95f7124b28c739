"""The machine's real services for tests: PostgreSQL, Redis and Mosquitto.

Each fixture hands a test its own namespace — a fresh PostgreSQL database, a
unique Redis key prefix, a unique MQTT topic prefix — and removes it afterwards.
A service that is not reachable makes the test skip with the reason, except under
``CI=true``, where a missing service is a failure (CI must never pass by skipping).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

POSTGRES_HOST = os.environ.get("LASTSEEN_TEST_PG_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("LASTSEEN_TEST_PG_PORT", "5432"))
POSTGRES_USER = os.environ.get("LASTSEEN_TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("LASTSEEN_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("LASTSEEN_TEST_REDIS_PORT", "6379"))
MQTT_HOST = os.environ.get("LASTSEEN_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("LASTSEEN_TEST_MQTT_PORT", "1883"))

START_HINTS = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "redis": (
        'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
        "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
    ),
    "mosquitto": "mosquitto -d -c /etc/mosquitto/mosquitto.conf",
}


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(service: str, host: str, port: int) -> None:
    """Skip (outside CI) or fail (``CI=true``) unless ``service`` answers on host:port."""
    if reachable(host, port):
        return
    reason = f"{service} is not reachable on {host}:{port}; start it with: {START_HINTS[service]}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class PostgresDatabase:
    name: str
    dsn: str


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """A DSN for a fresh, empty PostgreSQL database, dropped after the test."""
    import psycopg

    require("postgresql", POSTGRES_HOST, POSTGRES_PORT)
    name = unique("lastseen_test_")
    admin = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user={POSTGRES_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    """The Redis URL; pair it with ``redis_prefix`` for a private key space."""
    require("redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix; every key under it is deleted after the test."""
    import redis

    prefix = unique("lstest:") + ":"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(redis_url)
        try:
            for key in client.scan_iter(match=f"*{prefix}*", count=1000):
                client.delete(key)
        finally:
            client.close()


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    """(host, port) of the real Mosquitto broker."""
    require("mosquitto", MQTT_HOST, MQTT_PORT)
    return MQTT_HOST, MQTT_PORT


@pytest.fixture
def mqtt_prefix(mqtt_broker: tuple[str, int]) -> str:
    """A unique topic prefix ending in ``/``, so tests never see each other's messages.

    Tests that publish retained messages clear them (publish an empty retained
    payload) before they end."""
    return unique("lstest/") + "/"
