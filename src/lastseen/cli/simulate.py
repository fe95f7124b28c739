"""``lastseen simulate``: a fleet of simulated devices sending real heartbeats.

Each device beats every ``--interval`` seconds ± ``--jitter`` (a fraction of the
interval); a beat is lost with probability ``--loss``, so the hub sees devices go
stale and offline. Requests use keep-alive connections, at most ``--concurrency``
in flight; ``--batch`` sends ``POST /v1/heartbeats`` with up to 1000 beats each.
It runs for ``--duration`` seconds or until Ctrl-C, then prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from typing import TextIO

from lastseen.cli._common import (
    EXIT_HUB_ERROR,
    EXIT_OK,
    UsageError,
    hub_options,
    hub_target,
    plain,
    report,
    run,
    until_interrupted,
)
from lastseen.client import HubClient
from lastseen.client.fleet import MAX_DEVICES, FleetPlan, FleetSchedule
from lastseen.client.simulator import (
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    HubSender,
    SimulationStats,
    Simulator,
)

#: At most two progress refreshes a second: enough to watch, cheap to draw.
PROGRESS_EVERY = 0.5

_ID_CHARS = re.compile(r"[A-Za-z0-9._:@-]*")
_MAX_ID = 128


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        parents=[hub_options()],
        help="simulate a fleet of devices sending heartbeats",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--devices",
        type=_bounded_int(1, MAX_DEVICES),
        required=True,
        metavar="N",
        help=f"number of devices (1 to {MAX_DEVICES})",
    )
    parser.add_argument(
        "--interval",
        type=_positive_seconds,
        required=True,
        metavar="SECONDS",
        help="seconds between two heartbeats of one device",
    )
    parser.add_argument(
        "--jitter",
        type=_fraction(upper_inclusive=False),
        default=0.1,
        metavar="J",
        help="each wait varies by up to ± this fraction of the interval (0 to <1, default 0.1)",
    )
    parser.add_argument(
        "--loss",
        type=_fraction(upper_inclusive=True),
        default=0.0,
        metavar="P",
        help="probability that a heartbeat is dropped instead of sent (0 to 1, default 0)",
    )
    parser.add_argument(
        "--prefix", default="sim-", help="device id prefix (default sim-); ids are PREFIX0001..."
    )
    parser.add_argument(
        "--duration",
        type=_positive_seconds,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--batch", action="store_true", help="send batches via POST /v1/heartbeats (<= 1000 each)"
    )
    parser.add_argument(
        "--concurrency",
        type=_bounded_int(1, MAX_CONCURRENCY),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"requests in flight at most (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument("--seed", type=int, help="seed the random source to replay a run")
    parser.set_defaults(func=_simulate)


# -- argument types -------------------------------------------------------------


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _fraction(*, upper_inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = _number(text)
        if value < 0 or value > 1 or (value == 1 and not upper_inclusive):
            bound = "1" if upper_inclusive else "below 1"
            raise argparse.ArgumentTypeError(f"must be between 0 and {bound}, got {text!r}")
        return value

    parse.__name__ = "fraction"
    return parse


def plan_from_args(args: argparse.Namespace) -> FleetPlan:
    """The fleet the arguments describe; ``UsageError`` for an unusable prefix."""
    plan = FleetPlan(
        devices=args.devices,
        interval=args.interval,
        jitter=args.jitter,
        loss=args.loss,
        prefix=args.prefix,
    )
    longest = plan.device_id(plan.devices - 1)
    if not _ID_CHARS.fullmatch(plan.prefix):
        raise UsageError(f"--prefix: ids use only A-Z a-z 0-9 . _ : @ -, got {plan.prefix!r}")
    if len(longest) > _MAX_ID:
        raise UsageError(f"--prefix: device ids are at most {_MAX_ID} characters, got {longest!r}")
    return plan


# -- presentation (pure) ----------------------------------------------------------


def progress_line(stats: SimulationStats, elapsed: float, rate: float) -> str:
    return (
        f"simulate: {rate:,.0f} sent/s  {stats.sent:,} sent  {stats.errors:,} errors  "
        f"{stats.dropped:,} lost  {stats.in_flight} in flight  {elapsed:,.1f} s"
    )


def summary_line(plan: FleetPlan, stats: SimulationStats, elapsed: float) -> str:
    rate = stats.sent / elapsed if elapsed > 0 else 0.0
    return (
        f"simulate: {plan.devices:,} devices, {stats.sent:,} heartbeats sent ({rate:,.1f}/s) "
        f"in {stats.requests:,} requests, {stats.errors:,} errors, "
        f"{stats.dropped:,} lost on purpose, "
        + (f"{stats.abandoned:,} abandoned at the end, " if stats.abandoned else "")
        + f"{elapsed:,.1f} s"
    )


class ProgressMeter:
    """Turns successive readings of the totals into a recent sent/s rate."""

    def __init__(self, start: float) -> None:
        self._last_time = start
        self._last_sent = 0

    def rate(self, sent: int, now: float) -> float:
        span = now - self._last_time
        if span <= 0:
            return 0.0
        rate = (sent - self._last_sent) / span
        self._last_time, self._last_sent = now, sent
        return rate


# -- command --------------------------------------------------------------------


def _simulate(args: argparse.Namespace) -> int:
    return run(_main(args, sys.stderr))


async def _main(args: argparse.Namespace, err: TextIO) -> int:
    plan = plan_from_args(args)
    target = hub_target(args)
    rng = random.Random(args.seed)
    async with AsyncExitStack() as stack:
        # One client (one keep-alive connection) per request in flight; see simulator.py.
        clients = [
            await stack.enter_async_context(HubClient(target.url, target.key, max_connections=1))
            for _ in range(args.concurrency)
        ]
        senders = [HubSender(client, batch=args.batch) for client in clients]
        schedule = FleetSchedule(plan, start=time.monotonic(), rng=rng)
        simulator = Simulator(schedule, senders, batch=args.batch)
        progress = asyncio.create_task(_progress(simulator.stats, err)) if err.isatty() else None
        try:
            await until_interrupted(simulator.run(args.duration))
        finally:
            if progress is not None:
                progress.cancel()
                with suppress(asyncio.CancelledError):
                    await progress
                print("\r\x1b[K", end="", file=err)
    stats = simulator.stats
    print(summary_line(plan, stats, time.monotonic() - stats.started), file=err)
    if stats.fatal is not None:
        report(stats.fatal, err)
        return EXIT_HUB_ERROR
    if stats.sent == 0 and stats.last_error is not None:
        # Not one heartbeat got through: that is a failure, not a simulation result.
        report(stats.last_error, err)
        return EXIT_HUB_ERROR
    return EXIT_OK


async def _progress(stats: SimulationStats, err: TextIO) -> None:
    meter = ProgressMeter(time.monotonic())
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        now = time.monotonic()
        line = progress_line(stats, now - stats.started, meter.rate(stats.sent, now))
        print(f"\r{line}\x1b[K", end="", file=err, flush=True)
