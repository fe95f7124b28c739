"""Shared test fixtures: the asyncio backend and a real ``lastseen serve`` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lastseen.testing import HubProcess

# PostgreSQL, Redis and Mosquitto fixtures, each in its own namespace (tests/services.py).
pytest_plugins = ["tests.services"]


@pytest.fixture
def anyio_backend() -> str:
    # The hub runs on asyncio (uvloop in production); tests use plain asyncio.
    return "asyncio"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A real hub with small thresholds (stale after 0.5 s, offline after 1 s)."""
    process = HubProcess(tmp_path / "data", "--stale-after", "0.5", "--offline-after", "1")
    process.start()
    try:
        yield process
    finally:
        process.stop()
