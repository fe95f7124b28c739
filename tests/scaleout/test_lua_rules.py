"""The Lua port of the presence rules against the pure engine: same observations at
the same times must give the same transitions and the same final state."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lastseen.hub.core import MAX_ATTRIBUTES
from lastseen.presence import (
    DeviceState,
    Observation,
    Profile,
    Source,
    Status,
    Transition,
    advance,
    new_device,
    observe,
)
from lastseen.scaleout import lua
from lastseen.scaleout.codec import decode_hash, event_from_entry, profile_spec, state_from_hash
from lastseen.scaleout.keys import Keys

PROFILE = Profile(stale_after=10.0, offline_after=30.0, flap_threshold=3, flap_window=60.0)
T0 = 1_700_000_000.0
_counter = itertools.count()

observations = st.one_of(
    st.builds(Observation, st.sampled_from([Source.HEARTBEAT, Source.TELEMETRY])),
    st.builds(
        Observation,
        st.sampled_from([Source.CONNECT, Source.DISCONNECT]),
        session=st.none() | st.integers(0, 4),
    ),
    st.builds(Observation, st.just(Source.PROBE), ok=st.booleans()),
    st.builds(
        Observation,
        st.just(Source.MANUAL),
        status=st.sampled_from([Status.ONLINE, Status.STALE, Status.OFFLINE]),
    ),
    st.none(),  # a sweep: time passes, due deadlines fire
)
steps = st.lists(
    st.tuples(st.integers(0, 40_000).map(lambda ms: ms / 1000), observations),
    min_size=1,
    max_size=25,
)


class LuaEngine:
    """The scripts driven with an explicit ``now``, exactly as the hub drives them."""

    def __init__(self, client: redis.Redis, keys: Keys, profile: Profile) -> None:
        self.client = client
        self.keys = keys
        self.spec = profile_spec(profile)
        self.observe_script = client.register_script(lua.OBSERVE)
        self.sweep_script = client.register_script(lua.SWEEP)

    def observe(self, device_id: str, o: Observation, now: float) -> None:
        self.observe_script(
            keys=self.keys.observe_keys(device_id),
            args=[
                device_id,
                o.source.value,
                "" if o.session is None else o.session,
                "" if o.status is None else o.status.value,
                "1" if o.ok else "0",
                "1",
                "",
                self.spec,
                1000,
                MAX_ATTRIBUTES,
                repr(now),
            ],
        )

    def sweep(self, now: float) -> None:
        k = self.keys
        self.sweep_script(
            keys=[k.deadlines, k.seq, k.stream, k.counts],
            args=[k.device_prefix, 500, 1000, repr(now), ""],
        )

    def transitions(self) -> list[Transition]:
        entries = self.client.xrange(self.keys.stream, "-", "+")
        return [event_from_entry(i, f)[0].transition for i, f in entries]

    def state(self, device_id: str) -> DeviceState:
        return state_from_hash(decode_hash(self.client.hgetall(self.keys.device(device_id))))


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield c
    finally:
        c.close()


def run_both(
    client: redis.Redis, prefix: str, sequence: list[tuple[float, Observation | None]]
) -> tuple[list[Transition], list[Transition], DeviceState, DeviceState]:
    engine = LuaEngine(client, Keys(f"{prefix}{next(_counter)}"), PROFILE)
    now = T0
    state: DeviceState | None = None
    expected: list[Transition] = []
    for delta, o in sequence:
        now += delta
        if o is None:
            if state is not None:
                step = advance(state, PROFILE, now)
                state = step.state
                expected += step.transitions
                engine.sweep(now)
            continue
        if state is None:
            state = new_device(now)
        step = observe(state, o, PROFILE, now)
        state = step.state
        expected += step.transitions
        engine.observe("dev", o, now)
    if state is None:
        return [], [], new_device(T0), new_device(T0)
    return expected, engine.transitions(), state, engine.state("dev")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=steps)
def test_lua_rules_match_the_engine(
    client: redis.Redis, redis_prefix: str, sequence: list[tuple[float, Observation | None]]
) -> None:
    expected, actual, state, lua_state = run_both(client, redis_prefix, sequence)
    assert actual == expected
    assert lua_state == state


def test_a_late_heartbeat_records_the_timeouts_first(
    client: redis.Redis, redis_prefix: str
) -> None:
    beat = Observation(Source.HEARTBEAT)
    expected, actual, state, lua_state = run_both(client, redis_prefix, [(0.0, beat), (35.0, beat)])
    assert [(t.to_status, t.at) for t in actual] == [
        (Status.ONLINE, T0),
        (Status.STALE, T0 + 10),
        (Status.OFFLINE, T0 + 30),
        (Status.ONLINE, T0 + 35),
    ]
    assert actual == expected
    assert lua_state == state


def test_an_old_sessions_last_will_is_ignored(client: redis.Redis, redis_prefix: str) -> None:
    expected, actual, _, lua_state = run_both(
        client,
        redis_prefix,
        [
            (0.0, Observation(Source.CONNECT, session=2)),
            (1.0, Observation(Source.DISCONNECT, session=1)),
        ],
    )
    assert [t.to_status for t in actual] == [Status.ONLINE]
    assert actual == expected
    assert lua_state.session == 2
