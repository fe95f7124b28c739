"""Stream resume positions and reconnect backoff, without a network or a clock."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lastseen.client import HubError, HubUnavailable, StreamEvent
from lastseen.client.resume import Backoff, StreamResume


class Scripted:
    """A random source that returns the given values, then repeats the last one."""

    def __init__(self, values: Iterable[float]) -> None:
        self._values = list(values)

    def random(self) -> float:
        return self._values.pop(0) if len(self._values) > 1 else self._values[0]


GONE = HubUnavailable(None, "unreachable", "connection refused")


def transition(seq: int) -> StreamEvent:
    return StreamEvent("transition", str(seq), {"seq": seq})


def resume(after: int | None = None, **options: object) -> StreamResume:
    return StreamResume(after=after, backoff=Backoff(), rng=Scripted([0.5]), **options)  # type: ignore[arg-type]


def test_first_connection_uses_after() -> None:
    state = resume(after=17)
    assert state.query() == [("after", "17")]
    assert state.headers() == {}


def test_without_after_the_first_connection_is_live() -> None:
    state = resume()
    assert state.query() == []
    assert state.headers() == {}


def test_reconnect_sends_last_event_id_instead_of_after() -> None:
    state = resume(after=17)
    state.received(transition(18))
    state.received(transition(19))
    assert state.query() == []
    assert state.headers() == {"Last-Event-ID": "19"}


def test_seen_frames_do_not_move_the_resume_point() -> None:
    state = resume()
    state.received(transition(5))
    # The SSE id persists, so a ``seen`` frame may carry an id; it is not a position.
    state.received(StreamEvent("seen", "99", {"devices": {}}))
    state.received(StreamEvent("message", "100", {}))
    assert state.headers() == {"Last-Event-ID": "5"}


def test_reset_moves_the_resume_point_to_its_seq() -> None:
    state = resume(after=0)
    state.received(transition(3))
    state.received(StreamEvent("reset", "3", {"reason": "history_trimmed", "seq": 250}))
    assert state.headers() == {"Last-Event-ID": "250"}


@pytest.mark.parametrize("seq", [None, "250", -1, True, 2.5])
def test_a_reset_without_a_usable_seq_keeps_the_position(seq: object) -> None:
    state = resume()
    state.received(transition(3))
    state.received(StreamEvent("reset", None, {"seq": seq}))
    assert state.headers() == {"Last-Event-ID": "3"}


def test_delays_grow_then_cap() -> None:
    state = StreamResume(
        after=None, backoff=Backoff(initial=1, cap=8, factor=2), rng=Scripted([0.999999])
    )
    delays = [state.failed(GONE) for _ in range(6)]
    assert delays == pytest.approx([1, 2, 4, 8, 8, 8], rel=1e-5)


def test_jitter_keeps_at_least_half_the_delay() -> None:
    state = StreamResume(after=None, backoff=Backoff(initial=1, cap=8), rng=Scripted([0.0]))
    assert [state.failed(GONE) for _ in range(4)] == [0.5, 1, 2, 4]


def test_a_delivered_frame_resets_the_failure_count() -> None:
    state = StreamResume(after=None, backoff=Backoff(initial=1, cap=60), rng=Scripted([0.0]))
    for _ in range(5):
        state.failed(GONE)
    state.received(transition(1))
    assert state.failures == 0
    assert state.failed(GONE) == 0.5


def test_the_servers_retry_hint_replaces_the_initial_delay() -> None:
    state = StreamResume(after=None, backoff=Backoff(initial=1, cap=60), rng=Scripted([0.0]))
    assert state.failed(GONE, retry_ms=4000) == 2.0
    assert state.failed(GONE, retry_ms=4000) == 4.0


def test_gives_up_on_errors_retrying_cannot_fix() -> None:
    state = resume()
    for error in (
        HubError(401, "unauthorized", "bad key"),
        HubError(404, "not_found", "no such route"),
        HubError(None, "bad_stream", "garbage"),
        HubError(None, "invalid_url", "nope"),
    ):
        assert state.failed(error) is None


def test_retries_overload_and_server_errors() -> None:
    state = resume()
    for error in (HubError(429, "rate_limited", "slow down"), HubError(500, "internal", "oops")):
        assert state.failed(error) is not None


def test_gives_up_after_max_attempts() -> None:
    state = resume(max_attempts=2)
    assert state.failed(GONE) is not None
    assert state.failed(GONE) is not None
    assert state.failed(GONE) is None


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="after"):
        resume(after=-1)
    with pytest.raises(ValueError, match="max_attempts"):
        resume(max_attempts=0)
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=0)
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=10, cap=5)
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.5)


@given(
    attempt=st.integers(0, 10**6),
    r=st.floats(0, 1, exclude_max=True),
    initial=st.floats(0.001, 10),
    factor=st.floats(1, 1e6),
)
def test_any_delay_is_bounded_by_the_cap(
    attempt: int, r: float, initial: float, factor: float
) -> None:
    backoff = Backoff(initial=initial, cap=30, factor=factor)
    delay = backoff.delay(attempt, Scripted([r]))
    assert min(initial, 30) / 2 <= delay <= 30
