"""The hub's heartbeat shortcut (``refreshed``) gives exactly the engine's answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lastseen.hub.core import refreshed
from lastseen.presence import DeviceState, Observation, Profile, Source, Status, observe
from lastseen.presence.engine import next_deadline
from tests.hub.strategies import states as device_states

T0 = 1_800_000_000.0
times = st.floats(min_value=T0 - 1000, max_value=T0 + 1000, allow_nan=False)
states = device_states(times)
profiles = st.tuples(
    st.floats(min_value=0.5, max_value=500), st.floats(min_value=0.0, max_value=500)
).map(lambda t: Profile(stale_after=t[0], offline_after=t[0] + t[1]))


@given(states, profiles, times, st.none() | times)
def test_refreshed_is_the_engines_heartbeat(
    state: DeviceState, profile: Profile, now: float, scheduled: float | None
) -> None:
    deadline = next_deadline(state, profile)
    if scheduled is not None and deadline is not None:
        # The hub's invariant: the live heap entry is never later than the deadline.
        scheduled = min(scheduled, deadline)
    fast = refreshed(state, scheduled, now)
    if fast is None:
        return
    step = observe(state, Observation(Source.HEARTBEAT), profile, now)
    assert fast == step.state
    assert step.transitions == ()
    assert not step.changed
    new_deadline = next_deadline(fast, profile)
    assert scheduled is not None
    assert new_deadline is not None
    assert scheduled <= new_deadline  # the heap entry still fires first


def test_it_applies_to_an_online_device_before_its_deadline() -> None:
    state = DeviceState(status=Status.ONLINE, since=T0, last_seen=T0, last_own=T0, anchor=T0)
    fresh = refreshed(state, T0 + 40, T0 + 5)
    assert fresh is not None
    assert (fresh.last_seen, fresh.anchor, fresh.since) == (T0 + 5, T0 + 5, T0)
    assert refreshed(state, T0 + 40, T0 + 40) is None  # due: the engine decides
    assert refreshed(state, None, T0 + 5) is None
