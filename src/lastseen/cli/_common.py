"""What the client-side commands (devices, tail, simulate) share: where the hub is,
how a command runs and fails, and how times and labels are shown and parsed."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar
from urllib.parse import urlsplit

from lastseen.client import DEFAULT_URL, HubClient, HubError
from lastseen.errors import LastseenError

T = TypeVar("T")

URL_ENV = "LASTSEEN_URL"
KEY_ENV = "LASTSEEN_KEY"

#: Exit codes shared by every command.
EXIT_OK = 0
EXIT_HUB_ERROR = 1
EXIT_USAGE = 2


class UsageError(LastseenError):
    """The command line (or its environment) is wrong; exit code 2."""

    code = "usage"


def hub_options() -> argparse.ArgumentParser:
    """A parent parser with ``--url`` and ``--key``, for every command that talks to a hub."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("hub")
    group.add_argument(
        "--url",
        help=f"the hub's base URL (env {URL_ENV}, default {DEFAULT_URL})",
    )
    group.add_argument(
        "--key",
        help=f"API key sent as a Bearer token (env {KEY_ENV}; prefer the environment: "
        "arguments are visible to other users in the process list)",
    )
    return parent


@dataclass(frozen=True, slots=True)
class HubTarget:
    url: str
    key: str | None


def hub_target(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> HubTarget:
    """The hub to talk to: flags first, then the environment, then the default."""
    url = args.url or environ.get(URL_ENV) or DEFAULT_URL
    source = "--url" if args.url else URL_ENV if environ.get(URL_ENV) else "default"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{source}: expected an http:// or https:// URL, got {url!r}")
    if parts.query or parts.fragment:
        raise UsageError(f"{source}: the hub URL must not have a query or fragment: {url!r}")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise UsageError(f"{source}: {exc} in {url!r}") from None
    key = args.key or environ.get(KEY_ENV) or None
    if key is not None and not (key.isascii() and key.isprintable() and " " not in key):
        raise UsageError("the API key must be printable ASCII without spaces")
    return HubTarget(url=url, key=key)


def connect(args: argparse.Namespace, **options: Any) -> HubClient:
    target = hub_target(args)
    return HubClient(target.url, target.key, **options)


def report(error: LastseenError, stream: TextIO | None = None) -> None:
    """One line on stderr: ``lastseen: <code>: <message>``."""
    print(f"lastseen: {error.code}: {error.message}", file=stream or sys.stderr)


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine; map failures to exit codes with a one-line message."""
    try:
        return asyncio.run(main)
    except UsageError as exc:
        report(exc)
        return EXIT_USAGE
    except HubError as exc:
        report(exc)
        return EXIT_HUB_ERROR
    except BrokenPipeError:
        # The reader went away (``lastseen devices list | head``): not an error. Point
        # stdout at devnull so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


async def until_interrupted(work: Coroutine[Any, Any, T]) -> tuple[T | None, bool]:
    """Run ``work`` until it finishes or SIGINT/SIGTERM arrives, which cancels it.

    Returns ``(result, False)``, or ``(None, True)`` when interrupted: for ``tail`` and
    ``simulate``, Ctrl-C is the normal way to stop, not an error, and they still
    print their summary.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    installed: list[tuple[signal.Signals, Any]] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, interrupt)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or no signal support here: Ctrl-C stays fatal
        installed.append((sig, previous))
    try:
        return await task, False
    except asyncio.CancelledError:
        if interrupted and task.cancelled():
            return None, True
        raise
    finally:
        for sig, previous in installed:
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous)


# -- presentation ---------------------------------------------------------------


def plain(doc: str | None) -> str:
    """A module docstring as ``--help`` text: reST literals shown without their backticks."""
    return (doc or "").replace("``", "")


def format_time(value: datetime | None) -> str:
    """A UTC time to the second, ``2026-11-23 07:38:23Z``; ``-`` for none."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def format_ago(then: datetime | None, now: datetime) -> str:
    """How long ago ``then`` was, coarsely: ``3 s ago``, ``4 min ago``, ``2 h ago``,
    ``5 d ago``; ``never`` for none. Clocks disagree a little; a time slightly in the
    future reads as ``0 s ago``, a time clearly in the future as ``in 3 s``."""
    if then is None:
        return "never"
    seconds = (now - then).total_seconds()
    if seconds <= -1:
        return f"in {_span(-seconds)}"
    return f"{_span(max(seconds, 0))} ago"


def _span(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h"
    return f"{whole // 86400} d"


def format_labels(labels: Mapping[str, str]) -> str:
    """``k=v,k2=v2`` sorted by key; ``-`` for none."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def parse_label(text: str, separator: str) -> tuple[str, str]:
    """``key<separator>value``; the other of ``=``/``:`` is accepted when the expected
    one is absent, since both forms are in the docs."""
    other = ":" if separator == "=" else "="
    sep = separator if separator in text else other
    key, found, value = text.partition(sep)
    if not found or not key:
        raise argparse.ArgumentTypeError(f"expected key{separator}value, got {text!r}")
    return key, value


def label_arg(separator: str) -> Callable[[str], tuple[str, str]]:
    """An argparse ``type`` for labels written ``key<separator>value``."""

    def parse(text: str) -> tuple[str, str]:
        return parse_label(text, separator)

    parse.__name__ = "label"  # argparse names the type in its error message
    return parse


def device_id_arg(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a device id must not be empty")
    return text


def wants_color(stream: TextIO, disabled: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """Colour only for a terminal, and never when the user said no (``--no-color``,
    ``NO_COLOR`` set to anything, or a dumb terminal)."""
    if disabled or environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def arrow(stream: TextIO) -> str:
    """``→`` where the output can encode it, ``->`` elsewhere."""
    try:
        "→".encode(stream.encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return "->"
    return "→"
