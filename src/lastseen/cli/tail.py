"""``lastseen tail``: follow presence transitions live, one line each.

It resumes by itself across disconnects (the client sends ``Last-Event-ID``), and
on exit prints the last ``seq`` it showed, so ``--after SEQ`` continues exactly
there later. Ctrl-C is the normal way to stop it and exits 0.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TextIO

import orjson

from lastseen.cli._common import (
    EXIT_HUB_ERROR,
    EXIT_OK,
    arrow,
    connect,
    device_id_arg,
    hub_options,
    label_arg,
    plain,
    report,
    run,
    until_interrupted,
    wants_color,
)
from lastseen.client import HubError, StreamEvent, Transition
from lastseen.presence import Status

#: ANSI colours by target status: green, yellow, red, grey.
COLORS = {
    Status.ONLINE.value: "32",
    Status.STALE.value: "33",
    Status.OFFLINE.value: "31",
    Status.UNKNOWN.value: "90",
}
_WARNING = "1;33"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tail",
        parents=[hub_options()],
        help="follow presence transitions live",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--after",
        type=_seq,
        metavar="SEQ",
        help="first replay the transitions after SEQ (0: all history); default: from now on",
    )
    parser.add_argument(
        "--device",
        dest="devices",
        type=device_id_arg,
        nargs="+",
        action="extend",
        default=[],
        metavar="ID",
        help="only these devices (repeatable)",
    )
    parser.add_argument(
        "--status",
        dest="statuses",
        choices=[s.value for s in Status],
        nargs="+",
        action="extend",
        default=[],
        metavar="STATUS",
        help="only transitions to these statuses: unknown, online, stale, offline (repeatable)",
    )
    parser.add_argument(
        "--label",
        dest="labels",
        type=label_arg(":"),
        action="append",
        default=[],
        metavar="KEY:VALUE",
        help="only devices with this label (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print each transition as JSON")
    parser.add_argument("--no-color", action="store_true", help="never colour the output")
    parser.set_defaults(func=_tail)


def _seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seq number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seq number is >= 0, got {value}")
    return value


# -- presentation (pure) ----------------------------------------------------------


def paint(text: str, code: str | None, color: bool) -> str:
    if not color or code is None:
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


def format_transition(transition: Transition, *, color: bool = False, to: str = "→") -> str:
    """``<at>  <seq>  <device>  <from> → <to>  <reason>  [<source>]``, coloured by
    the status it went to."""
    at = transition.at.astimezone(UTC).isoformat(timespec="milliseconds")
    at = at.replace("+00:00", "Z")
    line = (
        f"{at}  {transition.seq:>6}  {transition.device_id:<16}  "
        f"{transition.from_status:>7} {to} {transition.to_status:<7}  "
        f"{transition.reason or '-'}  [{transition.source or '-'}]"
    )
    if transition.flapping:
        line += "  flapping"
    return paint(line, COLORS.get(transition.to_status), color)


def format_reset(data: dict[str, Any], *, color: bool = False) -> str:
    """The warning for a ``reset`` frame: what was missed is gone for good."""
    reason = data.get("reason") or "unknown reason"
    seq = data.get("seq")
    line = (
        f"lastseen: reset: transitions were lost ({reason}); continuing after seq {seq}. "
        "Take a new snapshot with `lastseen devices list`."
    )
    return paint(line, _WARNING, color)


def resume_hint(last_seq: int | None) -> str:
    if last_seq is None:
        return "lastseen: no transition received"
    return f"lastseen: last seq {last_seq}; resume with: lastseen tail --after {last_seq}"


@dataclass(slots=True)
class TailPrinter:
    """Shows stream frames and remembers the last ``seq`` shown; it outlives an
    interrupted stream so the exit can report where to resume."""

    out: TextIO
    err: TextIO
    json: bool = False
    color: bool = False
    err_color: bool = False
    arrow: str = "→"
    last_seq: int | None = None

    def show(self, event: StreamEvent) -> None:
        if event.event == "transition":
            transition = event.transition()
            self.last_seq = transition.seq
            if self.json:
                line = orjson.dumps(transition.raw).decode()
            else:
                line = format_transition(transition, color=self.color, to=self.arrow)
            # Flushed per line: a pipe (``| grep``) must see a transition when it happens.
            print(line, file=self.out, flush=True)
        elif event.event == "reset":
            seq = event.data.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool):
                self.last_seq = seq
            print(format_reset(event.data, color=self.err_color), file=self.err, flush=True)
        # ``seen`` frames (last_seen updates) and kinds this version does not know: not shown.

    def retrying(self, error: HubError, delay: float) -> None:
        print(f"lastseen: {error.code}: {error.message}; retrying in {delay:.1f} s", file=self.err)


# -- command --------------------------------------------------------------------


def _tail(args: argparse.Namespace) -> int:
    return run(_main(args, sys.stdout, sys.stderr))


async def _main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    printer = TailPrinter(
        out,
        err,
        json=args.json,
        color=wants_color(out, args.no_color),
        err_color=wants_color(err, args.no_color),
        arrow=arrow(out),
        last_seq=args.after,
    )
    try:
        await until_interrupted(_follow(args, printer))
    except HubError as exc:
        report(exc, err)
        print(resume_hint(printer.last_seq), file=err)
        return EXIT_HUB_ERROR
    print(resume_hint(printer.last_seq), file=err)
    return EXIT_OK


async def _follow(args: argparse.Namespace, printer: TailPrinter) -> None:
    async with connect(args) as hub:
        events = hub.stream(
            after=args.after,
            devices=args.devices,
            statuses=args.statuses,
            labels=args.labels,
            on_retry=printer.retrying,
        )
        async with aclosing(events):
            async for event in events:
                printer.show(event)
