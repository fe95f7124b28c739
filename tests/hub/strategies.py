"""Hypothesis strategies for device states, shared by the hub's property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from lastseen.presence import DeviceState, Reason, Source, Status

T0 = 1_800_000_000.0


def states(times: st.SearchStrategy[float]) -> st.SearchStrategy[DeviceState]:
    """Any state the engine can hold: flaps in time order, flapping only with flaps."""
    return st.builds(
        DeviceState,
        status=st.sampled_from(list(Status)),
        since=times,
        last_seen=st.none() | times,
        last_own=st.none() | times,
        anchor=st.none() | times,
        reason=st.none() | st.sampled_from(list(Reason)),
        source=st.none() | st.sampled_from(list(Source)),
        session=st.none() | st.integers(0, 5) | st.integers(2**53, 2**60),
        flaps=st.lists(times, max_size=4).map(lambda t: tuple(sorted(t))),
        flapping=st.booleans(),
    ).filter(lambda s: s.flaps or not s.flapping)
