"""Fixtures for the client-side commands: a parser without the rest of the
``lastseen`` command, and a real hub that requires an API key."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lastseen.cli import devices, simulate, tail
from lastseen.testing import HubProcess

ADMIN_KEY = "e2e-admin-key"

Parse = Callable[..., argparse.Namespace]


@pytest.fixture
def parse() -> Parse:
    """``parse("devices", "list", ...)``: the namespace the command would get."""
    parser = argparse.ArgumentParser(prog="lastseen")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (devices, tail, simulate):
        module.register(subparsers)

    def run(*argv: str) -> argparse.Namespace:
        return parser.parse_args(argv)

    return run


@pytest.fixture
def keyed_hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A real hub like ``hub``, but one that requires the admin key ``ADMIN_KEY``."""
    process = HubProcess(
        tmp_path / "keyed",
        "--stale-after", "0.5", "--offline-after", "1",
        env={"LASTSEEN_ADMIN_KEY": ADMIN_KEY},
    )  # fmt: skip
    process.start()
    try:
        yield process
    finally:
        process.stop()
