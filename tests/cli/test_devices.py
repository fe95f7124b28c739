"""``lastseen devices``: argument parsing and output formats, with an injected ``now``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lastseen.cli.devices import detail_lines, render_table, table_row
from lastseen.client import Device
from tests.cli.conftest import Parse

NOW = datetime(2026, 11, 23, 7, 40, 3, tzinfo=UTC)


def device(**overrides: Any) -> Device:
    data: dict[str, Any] = {
        "id": "sensor-1",
        "status": "online",
        "status_since": "2026-11-23T07:38:23.123Z",
        "last_seen": "2026-11-23T07:40:00.000Z",
        "reason": "heartbeat",
        "source": "heartbeat",
        "profile": "default",
        "labels": {"site": "lab"},
        "attributes": {},
        "metrics": {},
        "flapping": False,
        "created_at": "2026-11-23T07:00:00.000Z",
        "next_deadline": None,
    }
    data.update(overrides)
    return Device.from_json(data)


def test_table_row() -> None:
    assert table_row(device(), NOW) == (
        "sensor-1",
        "online",
        "2026-11-23 07:38:23Z",
        "3 s ago",
        "default",
        "site=lab",
    )


def test_table_row_of_a_device_never_seen() -> None:
    row = table_row(device(status="unknown", status_since=None, last_seen=None, labels={}), NOW)
    assert row[1:] == ("unknown", "-", "never", "default", "-")


def test_table_is_aligned_without_trailing_spaces() -> None:
    rows = [
        table_row(device(), NOW),
        table_row(device(id="gw-10", status="offline", labels={}, last_seen=None), NOW),
    ]
    lines = render_table(("ID", "STATUS", "SINCE", "LAST SEEN", "PROFILE", "LABELS"), rows)
    assert lines == [
        "ID        STATUS   SINCE                 LAST SEEN  PROFILE  LABELS",
        "sensor-1  online   2026-11-23 07:38:23Z  3 s ago    default  site=lab",
        "gw-10     offline  2026-11-23 07:38:23Z  never      default  -",
    ]


def test_detail_lines() -> None:
    lines = detail_lines(device(attributes={"fw": "1.2"}, flapping=True), NOW)
    assert lines[0] == "id             sensor-1"
    assert "status         online (flapping)" in lines
    assert "since          2026-11-23 07:38:23Z (1 min ago)" in lines
    assert "last seen      3 s ago (2026-11-23 07:40:00Z)" in lines
    assert 'attributes     {"fw":"1.2"}' in lines
    assert "metrics        -" in lines


def test_list_arguments(parse: Parse) -> None:
    args = parse(
        "devices", "list", "--status", "stale", "--profile", "p", "--label", "site:lab", "--json"
    )
    assert (args.status, args.profile, args.label, args.json) == (
        "stale",
        "p",
        ("site", "lab"),
        True,
    )


def test_list_defaults(parse: Parse) -> None:
    args = parse("devices", "list")
    assert (args.status, args.profile, args.label, args.json, args.url, args.key) == (
        None,
        None,
        None,
        False,
        None,
        None,
    )


def test_hub_options_come_after_the_action(parse: Parse) -> None:
    args = parse("devices", "show", "x", "--url", "http://h:1", "--key", "k")
    assert (args.id, args.url, args.key) == ("x", "http://h:1", "k")


def test_add_collects_labels(parse: Parse) -> None:
    args = parse(
        "devices", "add", "gw-1", "--profile", "battery", "--label", "a=1", "--label", "b=2"
    )
    assert (args.id, args.profile, args.label) == ("gw-1", "battery", [("a", "1"), ("b", "2")])


def test_remove(parse: Parse) -> None:
    assert parse("devices", "remove", "gw-1").id == "gw-1"


@pytest.mark.parametrize(
    "argv",
    [
        ("devices",),
        ("devices", "list", "--status", "asleep"),
        ("devices", "list", "--label", "nolabel"),
        ("devices", "show"),
        ("devices", "show", ""),
        ("devices", "add", "x", "--label", "novalue"),
        ("devices", "frobnicate"),
    ],
)
def test_usage_errors_exit_2(parse: Parse, argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse(*argv)
    assert caught.value.code == 2
