"""The hub's heartbeat shortcut (``DeviceTable.refresh``) gives exactly the engine's answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lastseen.hub.table import NAN, DeviceTable
from lastseen.presence import DeviceState, Observation, Profile, Source, Status, observe
from lastseen.presence.engine import next_deadline
from tests.hub.strategies import states as device_states

T0 = 1_800_000_000.0
times = st.floats(min_value=T0 - 1000, max_value=T0 + 1000, allow_nan=False)
states = device_states(times)
profiles = st.tuples(
    st.floats(min_value=0.5, max_value=500), st.floats(min_value=0.0, max_value=500)
).map(lambda t: Profile(stale_after=t[0], offline_after=t[0] + t[1]))


def _table(state: DeviceState, profile: Profile, scheduled: float | None) -> DeviceTable:
    table = DeviceTable()
    table.add("d", state, profile, T0, T0)
    table.scheduled[0] = NAN if scheduled is None else scheduled
    return table


@given(states, profiles, times, st.none() | times)
def test_a_refresh_is_the_engines_heartbeat(
    state: DeviceState, profile: Profile, now: float, scheduled: float | None
) -> None:
    deadline = next_deadline(state, profile)
    if scheduled is not None and deadline is not None:
        # The hub's invariant: the live deadline entry is never later than the deadline.
        scheduled = min(scheduled, deadline)
    table = _table(state, profile, scheduled)
    if not table.refresh(0, now):
        assert table.state(0) == state  # refused: nothing moved
        return
    step = observe(state, Observation(Source.HEARTBEAT), profile, now)
    assert table.state(0) == step.state
    assert step.transitions == ()
    assert not step.changed
    new_deadline = next_deadline(step.state, profile)
    assert scheduled is not None
    assert new_deadline is not None
    assert scheduled <= new_deadline  # the live entry still fires first


def test_it_applies_to_an_online_device_before_its_deadline() -> None:
    state = DeviceState(status=Status.ONLINE, since=T0, last_seen=T0, last_own=T0, anchor=T0)
    table = _table(state, Profile(), T0 + 40)
    assert table.refresh(0, T0 + 5)
    fresh = table.state(0)
    assert (fresh.last_seen, fresh.anchor, fresh.since) == (T0 + 5, T0 + 5, T0)
    assert not _table(state, Profile(), T0 + 40).refresh(0, T0 + 40)  # due: the engine decides
    assert not _table(state, Profile(), None).refresh(0, T0 + 5)
