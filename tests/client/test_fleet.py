"""The simulated fleet's schedule: pure, driven by hand-moved time and scripted randomness."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lastseen.client.fleet import MAX_DEVICES, FleetPlan, FleetSchedule


class Scripted:
    """Returns the given values in turn, then repeats the last one."""

    def __init__(self, values: Iterable[float]) -> None:
        self._values = list(values)
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return self._values.pop(0) if len(self._values) > 1 else self._values[0]


def test_ids_are_prefixed_and_zero_padded() -> None:
    plan = FleetPlan(devices=1000, interval=1, prefix="sim-")
    assert [plan.device_id(i) for i in (0, 7, 999)] == ["sim-000", "sim-007", "sim-999"]
    assert FleetPlan(devices=1, interval=1, prefix="x").device_id(0) == "x0"


def test_first_beats_are_spread_over_the_first_interval() -> None:
    # Offsets 0, 0.5 and 0.25 of a 10 s interval.
    schedule = FleetSchedule(
        FleetPlan(devices=3, interval=10, jitter=0), start=100, rng=Scripted([0, 0.5, 0.25])
    )
    assert schedule.next_deadline() == 100
    assert schedule.pop_due(100, limit=10).device_ids == ("sim-0",)
    assert schedule.next_deadline() == 102.5
    assert schedule.pop_due(104.9, limit=10).device_ids == ("sim-2",)
    assert schedule.pop_due(105, limit=10).device_ids == ("sim-1",)


def test_nothing_is_due_before_the_deadline() -> None:
    schedule = FleetSchedule(FleetPlan(devices=1, interval=10), start=0, rng=Scripted([0.5]))
    assert schedule.pop_due(4.999, limit=10).device_ids == ()
    assert schedule.next_deadline() == 5


def test_the_next_beat_is_one_interval_after_the_beat_without_jitter() -> None:
    schedule = FleetSchedule(
        FleetPlan(devices=1, interval=2, jitter=0), start=0, rng=Scripted([0.0])
    )
    times = []
    now = 0.0
    for _ in range(4):
        now = schedule.next_deadline()
        assert schedule.pop_due(now, limit=1).device_ids == ("sim-0",)
        times.append(now)
    assert times == [0, 2, 4, 6]


@pytest.mark.parametrize(("r", "wait"), [(0.0, 8.0), (0.5, 10.0), (0.75, 11.0)])
def test_jitter_varies_the_wait_within_the_fraction(r: float, wait: float) -> None:
    # The first draw places the first beat (at 0), the next draws the jitter.
    schedule = FleetSchedule(
        FleetPlan(devices=1, interval=10, jitter=0.2), start=0, rng=Scripted([0.0, r])
    )
    schedule.pop_due(0, limit=1)
    assert schedule.next_deadline() == pytest.approx(wait)


def test_a_late_driver_reschedules_from_when_the_beat_was_taken() -> None:
    schedule = FleetSchedule(
        FleetPlan(devices=1, interval=1, jitter=0), start=0, rng=Scripted([0.0])
    )
    # The driver shows up 3.5 intervals late: one beat, not a backlog of four.
    assert schedule.pop_due(3.5, limit=10).device_ids == ("sim-0",)
    assert schedule.next_deadline() == 4.5


def test_lost_beats_are_counted_not_sent_and_the_device_carries_on() -> None:
    plan = FleetPlan(devices=1, interval=1, jitter=0, loss=0.3)
    # Placement 0; then per beat: loss draw, jitter draw.
    schedule = FleetSchedule(plan, start=0, rng=Scripted([0.0, 0.1, 0.5, 0.9, 0.5]))
    lost = schedule.pop_due(0, limit=1)
    assert (lost.device_ids, lost.dropped) == ((), 1)
    assert schedule.next_deadline() == 1
    kept = schedule.pop_due(1, limit=1)
    assert (kept.device_ids, kept.dropped) == (("sim-0",), 0)


def test_full_loss_sends_nothing_but_terminates() -> None:
    plan = FleetPlan(devices=100, interval=1, loss=1.0)
    schedule = FleetSchedule(plan, start=0, rng=random.Random(1))
    due = schedule.pop_due(50, limit=1)
    assert (due.device_ids, due.dropped) == ((), 100)
    assert schedule.next_deadline() > 50


def test_without_loss_no_randomness_is_spent_on_it() -> None:
    rng = Scripted([0.0])
    schedule = FleetSchedule(FleetPlan(devices=2, interval=1), start=0, rng=rng)
    assert rng.calls == 2  # placement only
    schedule.pop_due(0, limit=10)
    assert rng.calls == 4  # one jitter draw per beat


def test_limit_bounds_a_pop_and_leaves_the_rest_due() -> None:
    schedule = FleetSchedule(FleetPlan(devices=5, interval=1), start=0, rng=Scripted([0.0]))
    assert schedule.pop_due(0, limit=2).device_ids == ("sim-0", "sim-1")
    assert schedule.pop_due(0, limit=10).device_ids == ("sim-2", "sim-3", "sim-4")
    with pytest.raises(ValueError, match="limit"):
        schedule.pop_due(0, limit=0)


def test_ties_go_in_index_order() -> None:
    schedule = FleetSchedule(FleetPlan(devices=12, interval=1), start=0, rng=Scripted([0.5]))
    assert schedule.pop_due(1, limit=100).device_ids == tuple(f"sim-{i:02d}" for i in range(12))


@pytest.mark.parametrize(
    "overrides",
    [
        {"devices": 0},
        {"devices": MAX_DEVICES + 1},
        {"interval": 0},
        {"interval": float("inf")},
        {"interval": float("nan")},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"loss": 1.01},
        {"loss": -0.1},
    ],
)
def test_plans_are_validated(overrides: dict[str, float]) -> None:
    arguments: dict[str, float] = {"devices": 1, "interval": 1} | overrides
    with pytest.raises(ValueError, match="must be"):
        FleetPlan(**arguments)  # type: ignore[arg-type]


def test_a_million_devices_fit() -> None:
    plan = FleetPlan(devices=MAX_DEVICES, interval=30)
    schedule = FleetSchedule(plan, start=0, rng=random.Random(7))
    due = schedule.pop_due(0.3, limit=MAX_DEVICES)
    # About 1% of the fleet is due in the first 1% of the interval.
    assert 9_000 < len(due.device_ids) < 11_000
    assert len(set(due.device_ids)) == len(due.device_ids)
    assert plan.device_id(MAX_DEVICES - 1) == "sim-999999"


@settings(max_examples=50, deadline=None)
@given(
    devices=st.integers(1, 50),
    interval=st.floats(0.05, 5),
    jitter=st.floats(0, 0.9),
    seed=st.integers(0, 2**32),
    tick=st.floats(0.01, 1),
)
def test_every_device_beats_at_its_pace(
    devices: int, interval: float, jitter: float, seed: int, tick: float
) -> None:
    """Driven at any cadence, each device's gaps stay within interval ± jitter (plus
    the driver's own lateness), and over a long run each beats about duration/interval
    times."""
    plan = FleetPlan(devices=devices, interval=interval, jitter=jitter)
    schedule = FleetSchedule(plan, start=0, rng=random.Random(seed))
    step = interval * tick  # the driver's cadence
    beats: dict[str, list[float]] = defaultdict(list)
    duration = interval * 20
    now = 0.0
    while now < duration:
        for device_id in schedule.pop_due(now, limit=devices).device_ids:
            beats[device_id].append(now)
        now += step
    low, high = interval * (1 - jitter), interval * (1 + jitter) + step
    for times in beats.values():
        for earlier, later in itertools.pairwise(times):
            assert low - 1e-6 <= later - earlier <= high + 1e-6
    assert len(beats) == devices
    for times in beats.values():
        assert duration / high - 2 <= len(times) <= duration / low + 1
