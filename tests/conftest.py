"""Shared test fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # The hub runs on asyncio (uvloop in production); tests use plain asyncio.
    return "asyncio"
