"""The simulator's driver with a hand-moved clock and a fake sender: no network, no sleeping."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from lastseen.client import HubError, HubUnavailable
from lastseen.client.fleet import FleetPlan, FleetSchedule
from lastseen.client.simulator import BeatSender as Sender
from lastseen.client.simulator import Simulator

QUIET_STEPS = 50


class FakeTime:
    """A clock whose ``sleep`` moves it instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # Time passes only once the other tasks had their turn (a few steps each):
        # what is quick in real time is done before the sleeper wakes.
        for _ in range(QUIET_STEPS):
            await asyncio.sleep(0)
        self.now += seconds


async def settle() -> None:
    """Let the other tasks run until they are all blocked (or fake time moved far)."""
    for _ in range(QUIET_STEPS * 20):
        await asyncio.sleep(0)


class Recorder:
    """A sender that records what it was asked to send, and when."""

    def __init__(self, time: FakeTime, fail: HubError | None = None) -> None:
        self.time = time
        self.fail = fail
        self.calls: list[tuple[float, tuple[str, ...]]] = []

    async def __call__(self, device_ids: Sequence[str]) -> int:
        self.calls.append((self.time.now, tuple(device_ids)))
        if self.fail is not None:
            raise self.fail
        return len(device_ids)


def schedule(time: FakeTime, **plan: float) -> FleetSchedule:
    arguments = {"devices": 5, "interval": 1.0, "jitter": 0.0} | plan
    return FleetSchedule(FleetPlan(**arguments), start=time.now, rng=random.Random(3))  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_each_device_beats_once_per_interval_until_the_duration() -> None:
    time = FakeTime()
    sender = Recorder(time)
    simulator = Simulator(schedule(time), [sender], clock=time.clock, sleep=time.sleep)
    stats = await simulator.run(duration=10)
    per_device = [sum(1 for _, ids in sender.calls if f"sim-{i}" in ids) for i in range(5)]
    assert per_device == [10] * 5
    assert all(len(ids) == 1 for _, ids in sender.calls)
    assert (stats.sent, stats.errors, stats.requests, stats.in_flight) == (50, 0, 50, 0)
    assert time.now == pytest.approx(1010)


@pytest.mark.anyio
async def test_beats_are_sent_when_due() -> None:
    time = FakeTime()
    sched = schedule(time, devices=1, interval=2.0)
    first = sched.next_deadline()
    sender = Recorder(time)
    await Simulator(sched, [sender], clock=time.clock, sleep=time.sleep).run(duration=5)
    assert [at for at, _ in sender.calls] == pytest.approx([first, first + 2, first + 4])


@pytest.mark.anyio
async def test_batch_mode_gathers_beats_into_few_requests() -> None:
    time = FakeTime()
    sender = Recorder(time)
    simulator = Simulator(
        schedule(time, devices=2000, interval=1.0),
        [sender],
        batch=True,
        clock=time.clock,
        sleep=time.sleep,
    )
    stats = await simulator.run(duration=3)
    assert stats.sent == pytest.approx(6000, abs=2000)
    assert all(len(ids) <= 1000 for _, ids in sender.calls)
    # Lingering makes batches: far fewer requests than beats.
    assert stats.requests < stats.sent / 50


@pytest.mark.anyio
async def test_lost_beats_are_counted() -> None:
    time = FakeTime()
    sender = Recorder(time)
    simulator = Simulator(
        schedule(time, devices=20, loss=0.5), [sender], clock=time.clock, sleep=time.sleep
    )
    stats = await simulator.run(duration=10)
    assert stats.sent + stats.dropped == 200
    assert 50 < stats.dropped < 150


@pytest.mark.anyio
async def test_failed_requests_count_as_errors_and_the_run_goes_on() -> None:
    time = FakeTime()
    sender = Recorder(time, fail=HubUnavailable(None, "unreachable", "refused"))
    simulator = Simulator(schedule(time), [sender], clock=time.clock, sleep=time.sleep)
    stats = await simulator.run(duration=3)
    assert (stats.sent, stats.errors) == (0, 15)
    assert stats.last_error is sender.fail
    assert stats.fatal is None


@pytest.mark.anyio
async def test_refused_credentials_stop_the_run() -> None:
    time = FakeTime()
    sender = Recorder(time, fail=HubError(401, "unauthorized", "bad key"))
    simulator = Simulator(schedule(time), [sender], clock=time.clock, sleep=time.sleep)
    stats = await simulator.run(duration=1000)
    assert stats.fatal is sender.fail
    assert stats.requests < 10
    assert time.now < 1010


@pytest.mark.anyio
async def test_refused_credentials_stop_even_a_long_wait() -> None:
    time = FakeTime()
    sender = Recorder(time, fail=HubError(403, "forbidden", "not your fleet"))
    sched = schedule(time, devices=2, interval=3600.0)
    simulator = Simulator(sched, [sender], clock=time.clock, sleep=time.sleep)
    stats = await simulator.run()
    # The first beat failed; the run did not sleep until the second device's turn.
    assert (stats.requests, stats.fatal) == (1, sender.fail)
    assert time.now == sender.calls[0][0]


@pytest.mark.anyio
async def test_requests_still_in_flight_after_the_grace_are_abandoned() -> None:
    time = FakeTime()
    never = asyncio.Event()

    async def hang(device_ids: Sequence[str]) -> int:
        await never.wait()
        return len(device_ids)

    simulator = Simulator(
        schedule(time, devices=3), [hang] * 4, clock=time.clock, sleep=time.sleep, grace=0
    )
    # Three beats in the first second, one more before all four senders hang: the
    # fleet waits for a sender, but only until the end of the run.
    stats = await simulator.run(duration=2)
    assert (stats.abandoned, stats.sent, stats.in_flight) == (4, 0, 0)
    assert time.now == pytest.approx(1002)


@pytest.mark.anyio
async def test_a_sender_carries_one_request_at_a_time() -> None:
    time = FakeTime()
    gate = asyncio.Event()
    busy: set[int] = set()
    overlaps = 0

    def make(number: int) -> Sender:
        async def send(device_ids: Sequence[str]) -> int:
            nonlocal overlaps
            overlaps += number in busy
            busy.add(number)
            await gate.wait()
            busy.discard(number)
            return len(device_ids)

        return send

    simulator = Simulator(
        schedule(time, devices=50, interval=0.1), [make(i) for i in range(4)],
        clock=time.clock, sleep=time.sleep,
    )  # fmt: skip
    run = asyncio.create_task(simulator.run())
    for _ in range(5):
        await settle()
        assert busy == {0, 1, 2, 3}
        gate.set()  # the four requests in flight complete; four new ones start
        await asyncio.sleep(0)
        gate.clear()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert simulator.stats.sent == 20
    assert simulator.stats.max_in_flight == 4
    assert overlaps == 0


@pytest.mark.anyio
async def test_in_flight_requests_are_bounded() -> None:
    time = FakeTime()
    release = asyncio.Event()
    started: list[str] = []

    async def slow(device_ids: Sequence[str]) -> int:
        started.extend(device_ids)
        await release.wait()
        return len(device_ids)

    simulator = Simulator(
        schedule(time, devices=10), [slow] * 3, clock=time.clock, sleep=time.sleep
    )
    run = asyncio.create_task(simulator.run(duration=0.5))
    await settle()
    # All ten are due within the half second, but only three may be in flight.
    assert len(started) == 3
    assert simulator.stats.in_flight == 3
    release.set()
    stats = await run
    assert stats.max_in_flight == 3
    assert stats.in_flight == 0


@pytest.mark.anyio
async def test_cancelling_the_run_stops_everything() -> None:
    time = FakeTime()
    never = asyncio.Event()

    async def hang(device_ids: Sequence[str]) -> int:
        await never.wait()
        return 0

    simulator = Simulator(schedule(time), [hang] * 4, clock=time.clock, sleep=time.sleep)
    run = asyncio.create_task(simulator.run())
    await settle()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert simulator.stats.in_flight == 0


def test_concurrency_is_bounded() -> None:
    time = FakeTime()
    with pytest.raises(ValueError, match="concurrency"):
        Simulator(schedule(time), [])
    with pytest.raises(ValueError, match="concurrency"):
        Simulator(schedule(time), [Recorder(time)] * 2000)
