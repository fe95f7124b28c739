"""Shared CLI plumbing: where the hub is, exit codes, signals, time and label formats."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
from datetime import UTC, datetime, timedelta, timezone

import pytest

from lastseen.cli._common import (
    EXIT_HUB_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    arrow,
    format_ago,
    format_labels,
    format_time,
    hub_target,
    parse_label,
    run,
    until_interrupted,
    wants_color,
)
from lastseen.client import DEFAULT_URL, HubError

NOW = datetime(2026, 11, 23, 7, 38, 23, 123000, tzinfo=UTC)


def args(url: str | None = None, key: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(url=url, key=key)


# -- hub target -------------------------------------------------------------------


def test_default_url_and_no_key() -> None:
    target = hub_target(args(), environ={})
    assert (target.url, target.key) == (DEFAULT_URL, None)


def test_environment_is_used_when_no_flag() -> None:
    env = {"LASTSEEN_URL": "https://hub.example:8443/base", "LASTSEEN_KEY": "k1"}
    target = hub_target(args(), environ=env)
    assert (target.url, target.key) == ("https://hub.example:8443/base", "k1")


def test_flags_beat_the_environment() -> None:
    env = {"LASTSEEN_URL": "http://env:1", "LASTSEEN_KEY": "env-key"}
    target = hub_target(args("http://flag:2", "flag-key"), environ=env)
    assert (target.url, target.key) == ("http://flag:2", "flag-key")


def test_an_empty_environment_variable_counts_as_unset() -> None:
    target = hub_target(args(), environ={"LASTSEEN_URL": "", "LASTSEEN_KEY": ""})
    assert (target.url, target.key) == (DEFAULT_URL, None)


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8080", "ftp://hub", "http://", "http://h/?x=1", "http://h:99999", "http://h:x"],
)
def test_a_bad_url_is_a_usage_error_naming_its_source(url: str) -> None:
    with pytest.raises(UsageError, match="--url"):
        hub_target(args(url), environ={})
    with pytest.raises(UsageError, match="LASTSEEN_URL"):
        hub_target(args(), environ={"LASTSEEN_URL": url})


@pytest.mark.parametrize("key", [" k", "a b", "k\n", "k\x7f", "clé"])
def test_a_key_with_spaces_or_control_characters_is_refused(key: str) -> None:
    with pytest.raises(UsageError, match="key"):
        hub_target(args(key=key), environ={})


# -- exit codes -------------------------------------------------------------------


async def _raise(error: Exception) -> int:
    raise error


def test_run_maps_hub_errors_to_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_raise(HubError(404, "not_found", "no device x"))) == EXIT_HUB_ERROR
    assert capsys.readouterr().err == "lastseen: not_found: no device x\n"


def test_run_maps_usage_errors_to_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_raise(UsageError("--url: bad"))) == EXIT_USAGE
    assert capsys.readouterr().err == "lastseen: usage: --url: bad\n"


def test_an_unreachable_hub_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    # A port nobody listens on: the connection is refused at once, no server needed.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from lastseen.cli.devices import _list

    namespace = argparse.Namespace(
        url=f"http://127.0.0.1:{port}", key=None, status=None, profile=None, label=None, json=False
    )
    assert _list(namespace) == EXIT_HUB_ERROR
    assert capsys.readouterr().err.startswith(
        f"lastseen: unreachable: cannot reach hub at http://127.0.0.1:{port}"
    )


# -- signals ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_until_interrupted_returns_the_result() -> None:
    async def work() -> int:
        return 7

    assert await until_interrupted(work()) == (7, False)


@pytest.mark.anyio
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_cancels_the_work_and_is_not_an_error(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    cleaned_up = asyncio.Event()

    async def work() -> int:
        os.kill(os.getpid(), sig)
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.set()
        return 1

    assert await until_interrupted(work()) == (None, True)
    assert cleaned_up.is_set()
    assert signal.getsignal(sig) == before


@pytest.mark.anyio
async def test_errors_of_the_work_propagate() -> None:
    with pytest.raises(HubError):
        await until_interrupted(_raise(HubError(500, "internal", "oops")))


@pytest.mark.anyio
async def test_cancelling_the_caller_is_not_mistaken_for_an_interrupt() -> None:
    started = asyncio.Event()

    async def work() -> int:
        started.set()
        await asyncio.Event().wait()
        return 1

    outer = asyncio.create_task(until_interrupted(work()))
    await started.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer


# -- presentation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s ago"),
        (3.9, "3 s ago"),
        (59.99, "59 s ago"),
        (60, "1 min ago"),
        (3599, "59 min ago"),
        (3600, "1 h ago"),
        (86399, "23 h ago"),
        (86400 * 3 + 5, "3 d ago"),
        (-0.4, "0 s ago"),  # a clock slightly ahead of ours
        (-3, "in 3 s"),
        (-600, "in 10 min"),
    ],
)
def test_format_ago(seconds: float, text: str) -> None:
    assert format_ago(NOW - timedelta(seconds=seconds), NOW) == text


def test_format_ago_never() -> None:
    assert format_ago(None, NOW) == "never"


def test_format_time_is_utc_to_the_second() -> None:
    cet = datetime(2026, 11, 23, 8, 38, 23, 999000, tzinfo=UTC).astimezone(
        timezone(timedelta(hours=1))
    )
    assert format_time(cet) == "2026-11-23 08:38:23Z"
    assert format_time(None) == "-"


def test_format_labels_is_sorted() -> None:
    assert format_labels({"site": "lab", "floor": "2"}) == "floor=2,site=lab"
    assert format_labels({}) == "-"


@pytest.mark.parametrize(
    ("text", "separator", "label"),
    [
        ("site=lab", "=", ("site", "lab")),
        ("site:lab", ":", ("site", "lab")),
        ("site:lab", "=", ("site", "lab")),  # the other form is accepted too
        ("url=http://x", "=", ("url", "http://x")),
        ("k:a=b", ":", ("k", "a=b")),
        ("empty=", "=", ("empty", "")),
    ],
)
def test_parse_label(text: str, separator: str, label: tuple[str, str]) -> None:
    assert parse_label(text, separator) == label


@pytest.mark.parametrize("text", ["site", "=lab", ":lab", ""])
def test_parse_label_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_label(text, "=")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_for_a_terminal_that_wants_it() -> None:
    assert wants_color(Tty(), disabled=False, environ={})
    assert not wants_color(io.StringIO(), disabled=False, environ={})
    assert not wants_color(Tty(), disabled=True, environ={})
    assert not wants_color(Tty(), disabled=False, environ={"NO_COLOR": "1"})
    assert not wants_color(Tty(), disabled=False, environ={"TERM": "dumb"})
    # NO_COLOR set but empty does not count (no-color.org).
    assert wants_color(Tty(), disabled=False, environ={"NO_COLOR": ""})


def test_arrow_falls_back_to_ascii() -> None:
    utf8 = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    ascii_ = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert (arrow(utf8), arrow(ascii_)) == ("→", "->")


def test_exit_codes() -> None:
    assert (EXIT_OK, EXIT_HUB_ERROR, EXIT_USAGE) == (0, 1, 2)
