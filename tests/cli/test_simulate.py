"""``lastseen simulate``: argument bounds, the fleet they describe, progress and summary."""

from __future__ import annotations

import pytest

from lastseen.cli._common import UsageError
from lastseen.cli.simulate import ProgressMeter, plan_from_args, progress_line, summary_line
from lastseen.client.fleet import FleetPlan
from lastseen.client.simulator import SimulationStats
from tests.cli.conftest import Parse


def test_arguments(parse: Parse) -> None:
    args = parse(
        "simulate", "--devices", "20", "--interval", "0.2", "--jitter", "0.3", "--loss", "0.05",
        "--prefix", "lab-", "--duration", "2", "--batch", "--concurrency", "8", "--seed", "7",
    )  # fmt: skip
    assert (args.devices, args.interval, args.jitter, args.loss) == (20, 0.2, 0.3, 0.05)
    assert (args.prefix, args.duration, args.batch, args.concurrency, args.seed) == (
        "lab-",
        2.0,
        True,
        8,
        7,
    )
    assert plan_from_args(args) == FleetPlan(
        devices=20, interval=0.2, jitter=0.3, loss=0.05, prefix="lab-"
    )


def test_defaults(parse: Parse) -> None:
    args = parse("simulate", "--devices", "1", "--interval", "1")
    assert (args.jitter, args.loss, args.prefix, args.duration, args.batch) == (
        0.1,
        0.0,
        "sim-",
        None,
        False,
    )
    assert args.concurrency == 64


@pytest.mark.parametrize(
    "argv",
    [
        (),
        ("--devices", "10"),
        ("--interval", "1"),
        ("--devices", "0", "--interval", "1"),
        ("--devices", "1000001", "--interval", "1"),
        ("--devices", "ten", "--interval", "1"),
        ("--devices", "1", "--interval", "0"),
        ("--devices", "1", "--interval", "nan"),
        ("--devices", "1", "--interval", "inf"),
        ("--devices", "1", "--interval", "1", "--jitter", "1"),
        ("--devices", "1", "--interval", "1", "--loss", "1.5"),
        ("--devices", "1", "--interval", "1", "--loss", "-0.1"),
        ("--devices", "1", "--interval", "1", "--duration", "0"),
        ("--devices", "1", "--interval", "1", "--concurrency", "0"),
        ("--devices", "1", "--interval", "1", "--concurrency", "5000"),
    ],
)
def test_usage_errors_exit_2(parse: Parse, argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("simulate", *argv)
    assert caught.value.code == 2


def test_a_million_devices_is_the_most(parse: Parse) -> None:
    assert parse("simulate", "--devices", "1000000", "--interval", "30").devices == 1_000_000


@pytest.mark.parametrize("prefix", ["bad prefix ", "sim/", "x" * 127])
def test_prefixes_must_make_valid_device_ids(parse: Parse, prefix: str) -> None:
    args = parse("simulate", "--devices", "100", "--interval", "1", "--prefix", prefix)
    with pytest.raises(UsageError, match="--prefix"):
        plan_from_args(args)


def test_progress_line() -> None:
    stats = SimulationStats(sent=12345, errors=3, dropped=40, in_flight=5)
    assert progress_line(stats, elapsed=61.25, rate=2000.4) == (
        "simulate: 2,000 sent/s  12,345 sent  3 errors  40 lost  5 in flight  61.2 s"
    )


def test_summary_line() -> None:
    stats = SimulationStats(sent=400, errors=2, dropped=10, requests=402)
    plan = FleetPlan(devices=20, interval=0.2)
    assert summary_line(plan, stats, elapsed=2.0) == (
        "simulate: 20 devices, 400 heartbeats sent (200.0/s) in 402 requests, 2 errors, "
        "10 lost on purpose, 2.0 s"
    )
    assert "(0.0/s)" in summary_line(plan, SimulationStats(), elapsed=0)


def test_progress_rate_is_over_the_last_window() -> None:
    meter = ProgressMeter(start=100.0)
    assert meter.rate(sent=50, now=100.5) == 100
    assert meter.rate(sent=60, now=101.0) == 20
    assert meter.rate(sent=60, now=101.0) == 0  # no time passed
