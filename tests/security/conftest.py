"""An open SQLite store in a temp dir, and key rings on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lastseen.clock import ManualClock
from lastseen.store import SQLiteStore

T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "lastseen.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
