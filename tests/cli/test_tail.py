"""``lastseen tail``: parsing, line format, colours and what it remembers for resuming."""

from __future__ import annotations

import io
from typing import Any

import pytest

from lastseen.cli.tail import TailPrinter, format_reset, format_transition, resume_hint
from lastseen.client import HubUnavailable, StreamEvent, Transition
from tests.cli.conftest import Parse


def event_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "seq": 42,
        "device_id": "sensor-1",
        "from": "online",
        "to": "stale",
        "at": "2026-11-23T07:41:00.5Z",
        "reason": "timeout:stale_after",
        "source": "timeout",
        "flapping": False,
    }
    data.update(overrides)
    return data


def transition(**overrides: Any) -> StreamEvent:
    data = event_json(**overrides)
    return StreamEvent("transition", str(data["seq"]), data)


def test_a_transition_line() -> None:
    line = format_transition(Transition.from_json(event_json()))
    assert line == (
        "2026-11-23T07:41:00.500Z      42  sensor-1           online → stale  "
        "  timeout:stale_after  [timeout]"
    )


def test_flapping_is_marked() -> None:
    assert format_transition(Transition.from_json(event_json(flapping=True))).endswith("flapping")


@pytest.mark.parametrize(
    ("to", "code"), [("online", "32"), ("stale", "33"), ("offline", "31"), ("unknown", "90")]
)
def test_lines_are_coloured_by_target_status(to: str, code: str) -> None:
    line = format_transition(Transition.from_json(event_json(to=to)), color=True)
    assert line.startswith(f"\x1b[{code}m")
    assert line.endswith("\x1b[0m")


def test_an_unknown_status_is_not_coloured() -> None:
    line = format_transition(Transition.from_json(event_json(to="hibernating")), color=True)
    assert "\x1b" not in line


def test_printer_shows_transitions_and_remembers_the_seq() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = TailPrinter(out, err, last_seq=40)
    printer.show(transition(seq=41))
    printer.show(StreamEvent("seen", "41", {"devices": {"sensor-1": "2026-11-23T07:41:00.000Z"}}))
    printer.show(transition(seq=42))
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["41", "42"]
    assert err.getvalue() == ""
    assert printer.last_seq == 42


def test_printer_json_lines_are_the_events() -> None:
    out = io.StringIO()
    printer = TailPrinter(out, io.StringIO(), json=True)
    printer.show(transition(seq=7))
    assert out.getvalue().startswith('{"seq":7,"device_id":"sensor-1",')
    assert out.getvalue().count("\n") == 1


def test_a_reset_is_a_visible_warning_and_moves_the_seq() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = TailPrinter(out, err, last_seq=3)
    printer.show(StreamEvent("reset", "3", {"reason": "history_trimmed", "seq": 250}))
    assert out.getvalue() == ""
    assert err.getvalue() == (
        "lastseen: reset: transitions were lost (history_trimmed); continuing after seq 250. "
        "Take a new snapshot with `lastseen devices list`.\n"
    )
    assert printer.last_seq == 250


def test_a_coloured_reset() -> None:
    assert format_reset({"seq": 1}, color=True).startswith("\x1b[1;33m")


def test_retrying_is_told_on_stderr() -> None:
    err = io.StringIO()
    TailPrinter(io.StringIO(), err).retrying(HubUnavailable(None, "unreachable", "refused"), 1.25)
    assert err.getvalue() == "lastseen: unreachable: refused; retrying in 1.2 s\n"


def test_resume_hint() -> None:
    assert resume_hint(42) == "lastseen: last seq 42; resume with: lastseen tail --after 42"
    assert resume_hint(None) == "lastseen: no transition received"


def test_arguments(parse: Parse) -> None:
    args = parse(
        "tail", "--after", "0", "--device", "a", "b", "--device", "c", "--status", "offline",
        "--status", "stale", "--label", "site:lab", "--json", "--no-color",
    )  # fmt: skip
    assert args.after == 0
    assert args.devices == ["a", "b", "c"]
    assert args.statuses == ["offline", "stale"]
    assert args.labels == [("site", "lab")]
    assert (args.json, args.no_color) == (True, True)


def test_defaults(parse: Parse) -> None:
    args = parse("tail")
    assert (args.after, args.devices, args.statuses, args.labels) == (None, [], [], [])


@pytest.mark.parametrize(
    "argv", [("--after", "-1"), ("--after", "x"), ("--status", "asleep"), ("--device",)]
)
def test_usage_errors_exit_2(parse: Parse, argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("tail", *argv)
    assert caught.value.code == 2
