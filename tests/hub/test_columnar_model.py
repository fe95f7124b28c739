"""The columnar hub against the pure engine, driven by random operations.

A Hypothesis state machine applies heartbeats (with and without attributes),
connects and disconnects of numbered sessions, probes, manual sets, profile changes,
deletes, re-adds, clock moves with and without a sweep, and restarts from the store
to a real hub (SQLite, manual clock) and to a reference: a dict of the engine's own
``DeviceState`` per device, moved only by ``observe`` and ``advance``. After every
step each device's state, profile and attributes, the status counts and the set of
devices must be the same in both.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lastseen.clock import ManualClock
from lastseen.errors import NotFound
from lastseen.hub.core import Hub
from lastseen.presence import (
    DeviceState,
    Observation,
    Profile,
    ProfileRegistry,
    Source,
    Status,
    advance,
    new_device,
    observe,
)
from lastseen.settings import Settings
from lastseen.store import SQLiteStore

T0 = 1_800_000_000.0
PROFILES = ProfileRegistry(
    [
        Profile(stale_after=10.0, offline_after=30.0, flap_threshold=3, flap_window=60.0),
        Profile(name="fast", stale_after=1.0, offline_after=1.5, flap_threshold=2, flap_window=5.0),
        Profile(name="flat", stale_after=5.0, offline_after=5.0, flap_threshold=4, flap_window=9.0),
    ]
)
IDS = st.sampled_from(["a", "b", "c", "d", "e"])


class ColumnarHubMatchesTheEngine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory(prefix="lastseen-model-")
        self.clock = ManualClock(T0)
        self.hub = self._start()
        self.model: dict[str, tuple[DeviceState, Profile, dict[str, Any]]] = {}

    def _start(self) -> Hub:
        settings = Settings(profiles=PROFILES, flush_interval=3600.0, sweep_chunk=2)
        hub = Hub(settings, SQLiteStore(Path(self.tmp.name) / "hub.db"), self.clock)
        self.loop.run_until_complete(hub.start(timers=False))
        return hub

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.hub.stop())
        self.loop.close()
        self.tmp.cleanup()

    # ------------------------------------------------------------------ the model

    def _observe(self, device_id: str, observation: Observation, register: bool) -> None:
        now = self.clock.now()
        if device_id not in self.model:
            if not register:
                return
            self.model[device_id] = (new_device(now), PROFILES.default, {})
        state, profile, attributes = self.model[device_id]
        step = observe(state, observation, profile, now)
        self.model[device_id] = (step.state, profile, attributes)

    # ------------------------------------------------------------------ rules

    @rule(
        device_id=IDS,
        attributes=st.none()
        | st.dictionaries(st.sampled_from("xyz"), st.integers(0, 3), min_size=1, max_size=2),
    )
    def heartbeat(self, device_id: str, attributes: dict[str, int] | None) -> None:
        self.run(self.hub.heartbeat(device_id, attributes=attributes))
        self._observe(device_id, Observation(Source.HEARTBEAT), register=True)
        if attributes:
            state, profile, current = self.model[device_id]
            self.model[device_id] = (state, profile, {**current, **attributes})

    @rule(ids=st.lists(IDS, min_size=1, max_size=4))
    def batch(self, ids: list[str]) -> None:
        self.run(self.hub.heartbeats([(d, None, None) for d in ids]))
        for device_id in ids:
            self._observe(device_id, Observation(Source.HEARTBEAT), register=True)

    @rule(
        device_id=IDS,
        source=st.sampled_from([Source.CONNECT, Source.DISCONNECT]),
        session=st.none() | st.integers(0, 3),
    )
    def session(self, device_id: str, source: Source, session: int | None) -> None:
        self._apply(device_id, Observation(source, session=session))

    @rule(device_id=IDS, ok=st.booleans())
    def probe(self, device_id: str, ok: bool) -> None:
        self._apply(device_id, Observation(Source.PROBE, ok=ok))

    @rule(device_id=IDS, status=st.sampled_from([Status.ONLINE, Status.STALE, Status.OFFLINE]))
    def manual(self, device_id: str, status: Status) -> None:
        self._apply(device_id, Observation(Source.MANUAL, status=status))

    def _apply(self, device_id: str, observation: Observation) -> None:
        try:
            self.run(self.hub.apply(device_id, observation))
        except NotFound:
            assert device_id not in self.model
        self._observe(device_id, observation, register=False)

    @rule(device_id=IDS, name=st.sampled_from(["default", "fast", "flat"]))
    def put(self, device_id: str, name: str) -> None:
        self.run(self.hub.put_device(device_id, profile=name))
        now = self.clock.now()
        if device_id not in self.model:
            self.model[device_id] = (new_device(now), PROFILES.default, {})
        state, profile, attributes = self.model[device_id]
        if profile.name != name:
            profile = PROFILES.get(name)
            state = advance(state, profile, now).state
        self.model[device_id] = (state, profile, attributes)

    @rule(device_id=IDS)
    def delete(self, device_id: str) -> None:
        try:
            self.run(self.hub.delete_device(device_id))
        except NotFound:
            assert device_id not in self.model
        self.model.pop(device_id, None)

    @rule(
        seconds=st.sampled_from([0.25, 0.5, 1.0, 1.5, 4.0, 9.999, 10.0, 25.0, 61.0]),
        sweep=st.booleans(),
    )
    def move_clock(self, seconds: float, sweep: bool) -> None:
        self.clock.advance(seconds)
        if sweep:
            self._sweep()

    def _sweep(self) -> None:
        now = self.clock.now()
        self.run(self.hub.sweep(now))
        for device_id, (state, profile, attributes) in self.model.items():
            self.model[device_id] = (advance(state, profile, now).state, profile, attributes)

    @precondition(lambda self: self.model)
    @rule()
    def restart(self) -> None:
        self._sweep()
        self.run(self.hub.stop())
        self.hub = self._start()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def same_devices_and_states(self) -> None:
        hub = self.hub
        now = self.clock.now()
        assert set(hub.entries) == set(self.model)
        assert len(hub.entries) == len(self.model)
        for device_id, (state, profile, attributes) in self.model.items():
            row = hub.entries[device_id]
            assert row.state == state, device_id
            assert row.profile == profile
            assert dict(row.attributes) == attributes
            # A reader sees the device as the engine judges it now, swept or not.
            assert hub.get(device_id)[0].state == advance(state, profile, now).state

    @invariant()
    def same_counts(self) -> None:
        expected = dict.fromkeys(Status, 0)
        for state, _, _ in self.model.values():
            expected[state.status] += 1
        assert self.hub.status_counts == expected


ColumnarHubMatchesTheEngine.TestCase.settings = hsettings(
    max_examples=40, stateful_step_count=30, deadline=None
)
test_columnar_hub_matches_the_engine = ColumnarHubMatchesTheEngine.TestCase
