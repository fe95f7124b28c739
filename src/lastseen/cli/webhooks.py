"""``lastseen webhooks list|add|remove|deliveries|replay``: webhook subscriptions (admin key).

See docs/notifications.md for payloads, headers and verifying the signature.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO
from urllib.parse import quote

import orjson

from lastseen.cli._common import EXIT_OK, UsageError, connect, hub_options, plain, run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "webhooks", help="list, add and remove webhooks; inspect and replay deliveries",
        description=plain(__doc__),
    )  # fmt: skip
    commands = parser.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    hub = hub_options()

    list_ = commands.add_parser("list", parents=[hub], help="the hub's webhooks")
    list_.add_argument("--json", action="store_true", help="one JSON object per line")
    list_.set_defaults(func=lambda a: run(_list(a, sys.stdout)))

    add = commands.add_parser("add", parents=[hub], help="subscribe a URL (prints its secret once)")
    add.add_argument("target", metavar="URL", help="where to POST events")
    add.add_argument("--device", action="append", default=[], help="only this device (repeatable)")
    add.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                     help="only devices with this label (repeatable)")  # fmt: skip
    add.add_argument("--profile", action="append", default=[], help="only this profile")
    add.add_argument("--to", action="append", default=[], help="only transitions to this status")
    add.add_argument("--no-transitions", action="store_true", help="alerts only")
    add.add_argument("--no-alerts", action="store_true", help="transitions only")
    add.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                     help="a header sent with every request (repeatable)")  # fmt: skip
    add.add_argument("--format", choices=["json", "slack"], default="json")
    add.add_argument("--description", default="")
    add.set_defaults(func=lambda a: run(_add(a, sys.stdout)))

    remove = commands.add_parser("remove", parents=[hub], help="delete a webhook")
    remove.add_argument("id")
    remove.set_defaults(func=lambda a: run(_remove(a, sys.stdout)))

    deliveries = commands.add_parser("deliveries", parents=[hub], help="a webhook's deliveries")
    deliveries.add_argument("id")
    deliveries.add_argument("--status", choices=["pending", "sending", "delivered", "dead"])
    deliveries.add_argument("--json", action="store_true", help="one JSON object per line")
    deliveries.set_defaults(func=lambda a: run(_deliveries(a, sys.stdout)))

    replay = commands.add_parser("replay", parents=[hub], help="send dead deliveries again")
    replay.add_argument("id")
    replay.add_argument("--delivery", type=int, help="only this delivery (default: every dead one)")
    replay.set_defaults(func=lambda a: run(_replay(a, sys.stdout)))


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def _path(webhook_id: str) -> str:
    return "/v1/webhooks/" + quote(webhook_id, safe="")


async def _list(args: argparse.Namespace, out: TextIO) -> int:
    async with connect(args) as hub:
        answer: Any = await hub.call("GET", "/v1/webhooks")
    hooks = answer["webhooks"]
    for hook in hooks:
        if args.json:
            print(orjson.dumps(hook).decode(), file=out)
        else:
            state = "enabled" if hook["enabled"] else "disabled"
            print(f"{hook['id']}  {hook['format']:5}  {state:8}  {hook['url']}", file=out)
    if not hooks and not args.json:
        print("no webhooks", file=sys.stderr)
    return EXIT_OK


async def _add(args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {
        "url": args.target,
        "format": args.format,
        "description": args.description,
        "headers": _pairs(args.header, "--header"),
        "filter": {
            "devices": args.device,
            "labels": _pairs(args.label, "--label"),
            "profiles": args.profile,
            "to": args.to,
            "transitions": not args.no_transitions,
            "alerts": not args.no_alerts,
        },
    }
    async with connect(args) as hub:
        created: Any = await hub.call("POST", "/v1/webhooks", body=body)
    print(f"created {created['id']} -> {created['url']}", file=out)
    print(f"secret (shown only this once): {created['secret']}", file=out)
    return EXIT_OK


async def _remove(args: argparse.Namespace, out: TextIO) -> int:
    async with connect(args) as hub:
        await hub.call("DELETE", _path(args.id))
    print(f"removed {args.id}", file=out)
    return EXIT_OK


async def _deliveries(args: argparse.Namespace, out: TextIO) -> int:
    params = [("status", args.status)] if args.status else []
    async with connect(args) as hub:
        answer: Any = await hub.call("GET", _path(args.id) + "/deliveries", params=params)
    for d in answer["deliveries"]:
        if args.json:
            print(orjson.dumps(d).decode(), file=out)
        else:
            last = d["last_status"] if d["last_status"] is not None else (d["last_error"] or "-")
            print(
                f"{d['id']:>6}  {d['status']:9}  event {d['event_id']:<12} {d['device_id']:<20} "
                f"attempts {d['attempts']}  last {last}",
                file=out,
            )
    return EXIT_OK


async def _replay(args: argparse.Namespace, out: TextIO) -> int:
    path = _path(args.id)
    path += f"/deliveries/{args.delivery}/replay" if args.delivery is not None else "/replay"
    async with connect(args) as hub:
        answer: Any = await hub.call("POST", path)
    print(f"replayed {answer['replayed']}", file=out)
    return EXIT_OK
