"""The ``lastseen`` command: one sub-command per module in this package.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit
code) as the parser default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from lastseen import __version__

COMMANDS = ("serve", "devices", "tail", "simulate", "keys", "webhooks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lastseen",
        description="Real-time device presence hub: which devices are online, since when, why.",
    )
    parser.add_argument("--version", action="version", version=f"lastseen {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = import_module(f"lastseen.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    sys.exit(code)
