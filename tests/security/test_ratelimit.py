"""The in-memory GCRA limiter: both rules, refusals change nothing, bounded memory."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from lastseen.clock import ManualClock
from lastseen.security import MemoryRateLimiter, Rate

T0 = 1_800_000_000.0


def test_open_rates_are_none_so_callers_skip_the_limiter() -> None:
    assert Rate.of(0.0, 0) is None
    assert Rate.of(1.0, 0) == Rate(1.0, 0)
    assert Rate().is_open


def test_min_interval_refuses_until_the_interval_has_passed() -> None:
    limiter = MemoryRateLimiter(ManualClock(T0))
    rate = Rate(min_interval=5.0)
    assert limiter.check("d", rate, T0) == 0.0
    assert limiter.check("d", rate, T0 + 1.0) == 4.0
    assert limiter.check("d", rate, T0 + 4.5) == 0.5
    assert limiter.check("d", rate, T0 + 5.0) == 0.0
    # Refusals did not push the next slot later.
    assert limiter.check("d", rate, T0 + 10.0) == 0.0


def test_per_minute_allows_a_burst_then_one_per_interval() -> None:
    limiter = MemoryRateLimiter(ManualClock(T0))
    rate = Rate(per_minute=6)  # one every 10 s, bursts of 6
    assert [limiter.check("d", rate, T0) for _ in range(6)] == [0.0] * 6
    assert limiter.check("d", rate, T0) == 10.0
    assert limiter.check("d", rate, T0 + 9.0) == 1.0
    assert limiter.check("d", rate, T0 + 10.0) == 0.0
    assert limiter.check("d", rate, T0 + 10.0) == 10.0


def test_both_rules_must_allow_and_the_wait_is_the_longer() -> None:
    limiter = MemoryRateLimiter(ManualClock(T0))
    rate = Rate(min_interval=2.0, per_minute=2)  # burst 2, then one per 30 s
    assert limiter.check("d", rate, T0) == 0.0
    assert limiter.check("d", rate, T0 + 1.0) == 1.0  # interval
    assert limiter.check("d", rate, T0 + 2.0) == 0.0
    assert limiter.check("d", rate, T0 + 4.0) == 26.0  # minute: refilled at T0 + 30
    assert limiter.check("d", rate, T0 + 30.0) == 0.0


def test_subjects_are_independent() -> None:
    limiter = MemoryRateLimiter(ManualClock(T0))
    rate = Rate(min_interval=60.0)
    assert limiter.check("a", rate, T0) == 0.0
    assert limiter.check("b", rate, T0) == 0.0
    assert limiter.check("a", rate, T0) > 0


def test_acquire_reads_the_injected_clock() -> None:
    clock = ManualClock(T0)
    limiter = MemoryRateLimiter(clock)
    rate = Rate(min_interval=1.0)

    async def go() -> list[float]:
        first = await limiter.acquire("d", rate)
        second = await limiter.acquire("d", rate)
        clock.advance(1.0)
        return [first, second, await limiter.acquire("d", rate)]

    assert asyncio.run(go()) == [0.0, 1.0, 0.0]


def test_expired_cells_are_dropped_as_new_ones_arrive() -> None:
    limiter = MemoryRateLimiter(ManualClock(T0))
    rate = Rate(min_interval=1.0)
    for i in range(1000):
        limiter.check(f"d{i}", rate, T0 + i * 0.5)
    # Only subjects seen in the last second can still be limited; a couple more linger.
    assert len(limiter) <= 5
    assert limiter.evictions == 0


def test_memory_is_capped_and_eviction_only_ever_lets_through() -> None:
    limiter = MemoryRateLimiter(ManualClock(T0), max_subjects=100)
    rate = Rate(min_interval=3600.0)
    for i in range(1000):
        assert limiter.check(f"d{i}", rate, T0) == 0.0
    assert len(limiter) == 100
    assert limiter.evictions == 900
    assert limiter.check("d999", rate, T0) > 0  # recent: still limited
    assert limiter.check("d0", rate, T0) == 0.0  # evicted: fails open


@settings(max_examples=200, deadline=None)
@given(
    per_minute=st.integers(1, 30),
    interval=st.sampled_from([0.0, 0.5, 2.0]),
    gaps=st.lists(st.floats(0.0, 20.0), min_size=1, max_size=200),
)
def test_accepted_requests_never_break_either_rule(
    per_minute: int, interval: float, gaps: list[float]
) -> None:
    limiter = MemoryRateLimiter(ManualClock(T0))
    rate = Rate(interval, per_minute)
    now = T0
    accepted: list[float] = []
    for gap in gaps:
        now += gap
        wait = limiter.check("d", rate, now)
        assert wait >= 0.0
        if wait == 0.0:
            accepted.append(now)
        else:
            # The answer is honest: waiting exactly that long is enough.
            probe = MemoryRateLimiter(ManualClock(T0))
            probe._cells = {k: _copy(v) for k, v in limiter._cells.items()}
            assert probe.check("d", rate, now + wait) == 0.0
    for earlier, later in itertools.pairwise(accepted):
        assert later - earlier >= interval - 1e-9
    # At most 2N - 1 in any 60-second window (burst plus a minute of refill), and
    # over a long run no more than N per minute plus the burst.
    for i, start in enumerate(accepted):
        in_window = sum(1 for t in accepted[i:] if t < start + 60.0)
        assert in_window <= 2 * per_minute - 1
    span = accepted[-1] - accepted[0] if accepted else 0.0
    assert len(accepted) <= per_minute + per_minute * span / 60.0 + 1e-9


def _copy(cell: object) -> object:
    clone = type(cell)()
    clone.interval_tat = cell.interval_tat  # type: ignore[attr-defined]
    clone.minute_tat = cell.minute_tat  # type: ignore[attr-defined]
    return clone
