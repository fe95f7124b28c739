"""The uptime arithmetic across window edges (pure: no hub, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lastseen.errors import InvalidInput
from lastseen.presence import Status
from lastseen.uptime import DEFAULT_WINDOW, Uptime, fleet, parse_window, uptime

U, ON, ST, OFF = Status.UNKNOWN, Status.ONLINE, Status.STALE, Status.OFFLINE
START, END = 1000.0, 2000.0  # a 1000 s window


def run(events: list[tuple[float, Status, Status]], **kw: float | Status) -> Uptime:
    args: dict[str, float | Status] = {"created_at": 0.0, "current": U, "since": 0.0, **kw}
    return uptime(events, start=START, end=END, **args)  # type: ignore[arg-type]


def fractions(result: Uptime) -> dict[str, float]:
    return {s.value: round(f, 6) for s, f in result.fractions.items() if f}


def test_no_transitions_at_all_the_current_status_held_since_before_the_window() -> None:
    result = run([], current=ON, since=10.0)
    assert fractions(result) == {"online": 1.0}
    assert result.transitions == 0


def test_no_transitions_and_a_status_younger_than_the_window_leaves_unknown_before() -> None:
    # History pruned: the hub says online since 1500, nothing tells what came before.
    assert fractions(run([], current=ON, since=1500.0)) == {"unknown": 0.5, "online": 0.5}


def test_a_device_never_seen_is_unknown_throughout() -> None:
    assert fractions(run([], current=U, since=1200.0, created_at=1200.0)) == {"unknown": 1.0}


def test_the_state_before_the_window_comes_from_the_last_transition_before_it() -> None:
    events = [(100.0, U, ON), (500.0, ON, OFF), (1500.0, OFF, ON)]
    result = run(events, current=ON)
    assert fractions(result) == {"offline": 0.5, "online": 0.5}
    assert result.transitions == 1  # only the one inside the window


def test_without_earlier_history_the_first_transition_says_what_came_before() -> None:
    # Pruned: the oldest retained event is inside the window.
    result = run([(1250.0, ST, OFF)], current=OFF)
    assert fractions(result) == {"stale": 0.25, "offline": 0.75}


def test_a_transition_exactly_at_the_window_start_counts_and_sets_the_state() -> None:
    result = run([(100.0, U, ON), (START, ON, ST)], current=ST)
    assert fractions(result) == {"stale": 1.0}
    assert result.transitions == 1


def test_a_transition_exactly_at_the_window_end_counts_but_adds_no_time() -> None:
    result = run([(100.0, U, ON), (END, ON, ST)], current=ST)
    assert fractions(result) == {"online": 1.0}
    assert result.transitions == 1


def test_a_device_created_inside_the_window_is_unknown_before() -> None:
    events = [(1600.0, U, ON), (1800.0, ON, ST)]
    result = run(events, created_at=1400.0, current=ST)
    assert fractions(result) == {"unknown": 0.6, "online": 0.2, "stale": 0.2}
    assert result.transitions == 2


def test_a_device_created_and_seen_at_the_same_instant() -> None:
    result = run([(1500.0, U, ON)], created_at=1500.0, current=ON)
    assert fractions(result) == {"unknown": 0.5, "online": 0.5}


def test_transitions_of_an_earlier_device_with_the_same_id_are_ignored() -> None:
    events = [(100.0, U, ON), (1100.0, ON, OFF), (1600.0, U, ON)]
    result = run(events, created_at=1500.0, current=ON)
    assert fractions(result) == {"unknown": 0.6, "online": 0.4}
    assert result.transitions == 1


def test_a_device_created_after_the_window_end_is_unknown() -> None:
    assert fractions(run([], created_at=5000.0, current=ON, since=5000.0)) == {"unknown": 1.0}


def test_future_dated_transitions_are_clamped_to_the_window_end() -> None:
    result = run([(100.0, U, ON), (1500.0, ON, ST), (9999.0, ST, OFF)], current=OFF)
    assert fractions(result) == {"online": 0.5, "stale": 0.5}
    assert result.transitions == 2


def test_a_clock_step_backwards_never_makes_time_negative() -> None:
    result = run([(100.0, U, ON), (1500.0, ON, ST), (1200.0, ST, OFF)], current=OFF)
    assert fractions(result) == {"online": 0.5, "offline": 0.5}
    assert all(v >= 0 for v in result.seconds.values())


def test_an_empty_window_is_all_unknown() -> None:
    result = uptime([], start=10.0, end=10.0, created_at=0.0, current=ON, since=0.0)
    assert result.fractions[U] == 1.0


transitions = st.lists(
    st.tuples(
        st.floats(0, 3000, allow_nan=False), st.sampled_from(Status), st.sampled_from(Status)
    ),
    max_size=20,
)


@given(
    transitions,
    st.floats(0, 3000, allow_nan=False),
    st.sampled_from(Status),
    st.floats(0, 3000, allow_nan=False),
)
def test_fractions_always_sum_to_one_and_never_go_negative(
    events: list[tuple[float, Status, Status]], created: float, current: Status, since: float
) -> None:
    result = run(events, created_at=created, current=current, since=since)
    assert sum(result.fractions.values()) == pytest.approx(1.0)
    assert all(v >= 0 for v in result.seconds.values())
    assert 0 <= result.transitions <= len(events)


def test_the_fleet_summary_weighs_every_device_the_same() -> None:
    one = run([], current=ON)
    other = run([(1500.0, ON, OFF)], current=OFF)
    summary = fleet([one, other])
    assert summary.devices == 2
    assert summary.fractions[ON] == pytest.approx(0.75)
    assert summary.fractions[OFF] == pytest.approx(0.25)
    assert summary.seconds[ON] == pytest.approx(1500.0)
    assert summary.transitions == 1
    assert fleet([]).devices == 0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (None, DEFAULT_WINDOW),
        ("", DEFAULT_WINDOW),
        ("90", 90.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("24h", 86_400.0),
        ("7d", 604_800.0),
        ("30d", 2_592_000.0),
    ],
)
def test_windows(text: str | None, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1h", "1.5h", "1w", "h", "01h", "24 h", "12345678", "1e3"])
def test_bad_windows_are_refused_with_a_code(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_window(text)
    assert caught.value.code == "invalid_window"
