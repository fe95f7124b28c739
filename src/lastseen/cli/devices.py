"""``lastseen devices list|show|add|remove``: the device registry from a terminal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TextIO

import orjson

from lastseen.cli._common import (
    EXIT_OK,
    connect,
    device_id_arg,
    format_ago,
    format_labels,
    format_time,
    hub_options,
    label_arg,
    plain,
    run,
)
from lastseen.client import Device
from lastseen.presence import Status

_COLUMNS = ("ID", "STATUS", "SINCE", "LAST SEEN", "PROFILE", "LABELS")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "devices", help="list, show, add and remove devices", description=plain(__doc__)
    )
    commands = parser.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    hub = hub_options()

    list_ = commands.add_parser("list", parents=[hub], help="list devices with their presence")
    list_.add_argument("--status", choices=[s.value for s in Status], help="only this status")
    list_.add_argument("--profile", help="only devices of this profile")
    list_.add_argument(
        "--label", type=label_arg(":"), metavar="KEY:VALUE", help="only devices with this label"
    )
    list_.add_argument("--json", action="store_true", help="one JSON object per line")
    list_.set_defaults(func=_list)

    show = commands.add_parser("show", parents=[hub], help="one device in detail")
    show.add_argument("id", type=device_id_arg, metavar="ID")
    show.add_argument("--json", action="store_true", help="the device as JSON")
    show.set_defaults(func=_show)

    add = commands.add_parser(
        "add", parents=[hub], help="register a device, or update its profile and labels"
    )
    add.add_argument("id", type=device_id_arg, metavar="ID")
    add.add_argument("--profile", help="the profile that judges it (default: the hub's default)")
    add.add_argument(
        "--label",
        type=label_arg("="),
        action="append",
        metavar="KEY=VALUE",
        help="a label (repeatable); given labels replace the device's labels",
    )
    add.add_argument("--json", action="store_true", help="print the device as JSON")
    add.set_defaults(func=_add)

    remove = commands.add_parser("remove", parents=[hub], help="forget a device")
    remove.add_argument("id", type=device_id_arg, metavar="ID")
    remove.set_defaults(func=_remove)


# -- presentation (pure: ``now`` is passed in) ------------------------------------


def table_row(device: Device, now: datetime) -> tuple[str, ...]:
    return (
        device.id,
        device.status,
        format_time(device.status_since),
        format_ago(device.last_seen, now),
        device.profile or "-",
        format_labels(device.labels),
    )


def render_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; no trailing spaces."""
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def detail_lines(device: Device, now: datetime) -> list[str]:
    """``show``: one ``field  value`` line per fact."""
    since = format_time(device.status_since)
    if device.status_since is not None:
        since += f" ({format_ago(device.status_since, now)})"
    last_seen = format_ago(device.last_seen, now)
    if device.last_seen is not None:
        last_seen += f" ({format_time(device.last_seen)})"
    fields = [
        ("id", device.id),
        ("status", device.status + (" (flapping)" if device.flapping else "")),
        ("since", since),
        ("last seen", last_seen),
        ("reason", device.reason or "-"),
        ("source", device.source or "-"),
        ("profile", device.profile or "-"),
        ("labels", format_labels(device.labels)),
        ("next deadline", format_time(device.next_deadline)),
        ("created", format_time(device.created_at)),
        ("attributes", _json(device.attributes) if device.attributes else "-"),
        ("metrics", _json(device.metrics) if device.metrics else "-"),
    ]
    width = max(len(name) for name, _ in fields)
    return [f"{name.ljust(width)}  {value}" for name, value in fields]


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _print_lines(lines: Iterable[str], out: TextIO) -> None:
    for line in lines:
        print(line, file=out)


# -- commands -------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    return run(_list_async(args, sys.stdout))


async def _list_async(args: argparse.Namespace, out: TextIO) -> int:
    found: list[Device] = []
    async with connect(args) as hub:
        devices = hub.list_devices(
            status=args.status, profile=args.profile, label=args.label, limit=1000
        )
        async with aclosing(devices):
            async for device in devices:
                if args.json:
                    # Streamed line by line: a million devices need no buffering here.
                    print(_json(device.raw), file=out)
                else:
                    # The table needs every row to size its columns.
                    found.append(device)
    if not args.json:
        if found:
            now = datetime.now(UTC)
            _print_lines(render_table(_COLUMNS, [table_row(d, now) for d in found]), out)
        else:
            print("no devices", file=sys.stderr)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    return run(_show_async(args, sys.stdout))


async def _show_async(args: argparse.Namespace, out: TextIO) -> int:
    async with connect(args) as hub:
        device = await hub.get_device(args.id)
    _print_device(device, args.json, out)
    return EXIT_OK


def _add(args: argparse.Namespace) -> int:
    return run(_add_async(args, sys.stdout))


async def _add_async(args: argparse.Namespace, out: TextIO) -> int:
    labels = dict(args.label) if args.label else None
    async with connect(args) as hub:
        device = await hub.put_device(args.id, profile=args.profile, labels=labels)
    _print_device(device, args.json, out)
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    return run(_remove_async(args, sys.stdout))


async def _remove_async(args: argparse.Namespace, out: TextIO) -> int:
    async with connect(args) as hub:
        await hub.delete_device(args.id)
    print(f"removed {args.id}", file=out)
    return EXIT_OK


def _print_device(device: Device, as_json: bool, out: TextIO) -> None:
    if as_json:
        print(_json(device.raw), file=out)
    else:
        _print_lines(detail_lines(device, datetime.now(UTC)), out)
