"""Millisecond deadline buckets: never early, never lost, exact at any ``now``."""

from __future__ import annotations

from array import array

from hypothesis import given
from hypothesis import strategies as st

from lastseen.hub.deadlines import Deadlines, bucket_of

T0 = 1_800_000_000.0
NAN = float("nan")
offsets = st.floats(min_value=0, max_value=5, allow_nan=False)


def _filled(entries: list[tuple[float, bool]]) -> tuple[array[float], Deadlines]:
    """Device ``n`` has an entry at ``T0 + entries[n][0]``, live unless its flag says
    not (then its ``scheduled`` is NaN, as a deleted or rescheduled device's is)."""
    scheduled = array("d")
    deadlines = Deadlines()
    for n, (offset, live) in enumerate(entries):
        scheduled.append(T0 + offset if live else NAN)
        deadlines.add(T0 + offset, n)
    return scheduled, deadlines


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_a_bucket_never_ends_before_its_deadline(deadline: float) -> None:
    key = bucket_of(deadline)
    assert key / 1000.0 >= deadline
    assert (key - 1) / 1000.0 < deadline + 1e-9 * deadline


@given(
    st.lists(st.tuples(offsets, st.booleans()), min_size=1, max_size=40),
    st.lists(offsets, min_size=1, max_size=5),
    st.integers(1, 7),
)
def test_take_returns_exactly_the_live_due_numbers(
    entries: list[tuple[float, bool]], nows: list[float], limit: int
) -> None:
    scheduled, deadlines = _filled(entries)
    assert len(deadlines) == len(entries)
    fired: list[int] = []
    for offset in sorted(nows):
        now = T0 + offset
        while True:
            due = deadlines.take(now, limit, scheduled)
            assert all(scheduled[n] <= now for n in due)
            for n in due:
                scheduled[n] = NAN  # fired, as the hub does
            fired += due
            if len(due) < limit:
                break
        # Nothing live and due is left behind.
        assert not [n for n, d in enumerate(scheduled) if d <= now]
        first = deadlines.first()
        waiting = [d for d in scheduled if d == d]
        if waiting:
            assert first is not None
            assert first <= min(waiting) + 0.001
    expected = {
        n for n, (offset, live) in enumerate(entries) if live and T0 + offset <= T0 + max(nows)
    }
    assert sorted(fired) == sorted(expected)


def test_the_first_bucket_wakes_the_timer() -> None:
    deadlines = Deadlines()
    assert deadlines.first() is None
    assert deadlines.add(T0 + 2, 0)
    assert not deadlines.add(T0 + 3, 1)
    assert deadlines.add(T0 + 1, 2)
    assert deadlines.first() == T0 + 1
    deadlines.extend(bucket_of(T0 + 1), array("I", [3, 4]))
    assert len(deadlines) == 5


@given(
    st.lists(st.tuples(offsets, st.booleans()), min_size=0, max_size=40),
    offsets,
    st.lists(st.integers(0, 39), max_size=10),
)
def test_due_is_every_live_due_number_and_takes_nothing(
    entries: list[tuple[float, bool]], now_offset: float, moved: list[int]
) -> None:
    scheduled, deadlines = _filled(entries)
    for n in moved:  # rescheduled earlier: a second, live entry; the first is dead
        if n < len(entries) and scheduled[n] == scheduled[n]:
            scheduled[n] -= 0.5
            deadlines.add(scheduled[n], n)
    now = T0 + now_offset
    expected = {n for n, deadline in enumerate(scheduled) if deadline <= now}
    size = len(deadlines)
    assert deadlines.due(now, scheduled) == expected
    assert len(deadlines) == size
    assert set(deadlines.take(now, 1000, scheduled)) == expected
