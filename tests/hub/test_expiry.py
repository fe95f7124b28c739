"""Timeouts on the columns are exactly the engine's ``advance`` and ``next_deadline``;
events rendered in two parts are exactly ``orjson.dumps(event_json(...))``."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from lastseen.hub.deadlines import bucket_of
from lastseen.hub.expiry import deadline, expire_many
from lastseen.hub.rendering import event_bytes, event_tail
from lastseen.hub.table import STATUS_CODE, DeviceTable
from lastseen.presence import (
    DeviceState,
    Profile,
    Reason,
    Source,
    Status,
    Transition,
    advance,
    next_deadline,
)
from lastseen.wire import event_json
from tests.hub.strategies import states as device_states

T0 = 1_800_000_000.0
times = st.floats(min_value=T0 - 100, max_value=T0 + 100, allow_nan=False)
states = device_states(times)
profiles = st.builds(
    lambda stale, extra, threshold, window: Profile(
        stale_after=stale, offline_after=stale + extra, flap_threshold=threshold, flap_window=window
    ),
    st.floats(min_value=0.5, max_value=60),
    st.sampled_from([0.0, 0.5, 10.0, 100.0]),
    st.integers(1, 4),
    st.floats(min_value=1, max_value=200),
)


@given(states, profiles, st.floats(min_value=T0 - 100, max_value=T0 + 400, allow_nan=False))
def test_expire_many_is_the_engines_advance(
    state: DeviceState, profile: Profile, now: float
) -> None:
    table = DeviceTable()
    n = table.add("d", state, profile, T0, T0)
    step = advance(state, profile, now)
    expired = expire_many(table, [n], now)
    if expired.slow:
        assert expired.slow == [n]
        assert table.state(n) == state  # handed back untouched
        assert not expired.transitions
        return
    assert tuple(expired.transitions) == step.transitions
    assert expired.owners == [n] * len(step.transitions)
    assert table.state(n) == step.state
    assert bool(expired.transitions) == step.changed
    # Re-armed at the engine's next deadline, in that deadline's bucket.
    rearmed = next_deadline(step.state, profile)
    if rearmed is None:
        assert table.scheduled[n] != table.scheduled[n]
        assert not expired.rearm
    else:
        assert table.scheduled[n] == rearmed
        assert list(expired.rearm[bucket_of(rearmed)]) == [n]
    moves = {k: v for k, v in expired.moves.items() if v}
    expected: dict[tuple[int, int], int] = {}
    for t in step.transitions:
        key = (STATUS_CODE[t.from_status], STATUS_CODE[t.to_status])
        expected[key] = expected.get(key, 0) + 1
    assert moves == expected


@given(states, profiles)
def test_deadline_is_the_engines_next_deadline(state: DeviceState, profile: Profile) -> None:
    table = DeviceTable()
    n = table.add("d", state, profile, T0, T0)
    found = deadline(table, n)
    expected = next_deadline(state, profile)
    assert (None if found != found else found) == expected


def test_a_burst_device_times_out_online_to_stale_on_the_columns() -> None:
    table = DeviceTable()
    profile = Profile(stale_after=10, offline_after=600)
    state = DeviceState(status=Status.ONLINE, since=T0, last_seen=T0, last_own=T0, anchor=T0)
    n = table.add("d", state, profile, T0, T0)
    (transition,) = expire_many(table, [n], T0 + 10).transitions
    assert (transition.from_status, transition.to_status, transition.at) == (
        Status.ONLINE,
        Status.STALE,
        T0 + 10,
    )
    assert deadline(table, n) == T0 + 600


@given(
    st.lists(st.tuples(states, profiles), min_size=1, max_size=8),
    st.floats(min_value=T0 - 100, max_value=T0 + 400, allow_nan=False),
)
def test_expire_many_of_a_chunk_is_each_device_alone(
    devices: list[tuple[DeviceState, Profile]], now: float
) -> None:
    one, many = DeviceTable(), DeviceTable()
    for i, (state, profile) in enumerate(devices):
        one.add(f"d{i}", state, profile, T0, T0)
        many.add(f"d{i}", state, profile, T0, T0)
    chunk = expire_many(many, list(range(len(devices))), now)
    owners: list[int] = []
    transitions: list[Transition] = []
    slow: list[int] = []
    for n in range(len(devices)):
        alone = expire_many(one, [n], now)
        slow += alone.slow
        owners += alone.owners
        transitions += alone.transitions
        assert many.state(n) == one.state(n)
        assert (
            many.scheduled.tobytes()[8 * n : 8 * n + 8]
            == one.scheduled.tobytes()[8 * n : 8 * n + 8]
        )
    assert (chunk.slow, chunk.owners, chunk.transitions) == (slow, owners, transitions)


@given(
    st.integers(0, 2**40),
    st.text(alphabet='abcXYZ019._:@-\\"é\n', min_size=1, max_size=12),
    st.sampled_from(list(Status)),
    st.sampled_from(list(Status)),
    times,
    st.sampled_from(list(Reason)),
    st.sampled_from(list(Source)),
    st.booleans(),
)
def test_event_bytes_are_orjsons_event_json(
    seq: int,
    device_id: str,
    before: Status,
    after: Status,
    at: float,
    reason: Reason,
    source: Source,
    flapping: bool,
) -> None:
    transition = Transition(before, after, at, reason, source, flapping)
    rendered = event_bytes(seq, device_id, event_tail(transition))
    assert rendered == orjson.dumps(event_json(seq, device_id, transition))
