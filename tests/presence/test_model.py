"""The engine against a naive model of the rules, driven by Hypothesis.

``Model`` is written from ``docs/presence-model.md`` alone: plain strings instead of
the enums, the full transition history instead of a bounded window, no shared code
with the engine. The state machine feeds both the same observations and clock moves
and checks after every step that they agree on everything a consumer can see.

Times are multiples of 0.25 s so that every sum and difference is exact: the model
may then compare ``at - t < window`` where the engine compares ``t > at - window``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from lastseen.presence import (
    DeviceState,
    Observation,
    Profile,
    Source,
    Status,
    Step,
    Transition,
    advance,
    new_device,
    next_deadline,
    observe,
)

#: (from, to, at, reason, source, flapping)
Record = tuple[str, str, float, str, str, bool]

OWN_REASON = {"heartbeat": "heartbeat", "telemetry": "telemetry", "connect": "connected"}
ONE_LEVEL_DOWN = {"unknown": "offline", "online": "stale", "stale": "offline"}


@dataclass
class Model:
    """The presence rules, naively."""

    stale_after: float
    offline_after: float
    flap_threshold: int
    flap_window: float
    since: float
    status: str = "unknown"
    last_seen: float | None = None
    last_own: float | None = None
    anchor: float | None = None
    reason: str | None = None
    source: str | None = None
    session: int | None = None
    flapping: bool = False
    history: list[float] = field(default_factory=list)
    log: list[Record] = field(default_factory=list)

    def timeout(self) -> tuple[float, str, str] | None:
        """The pending timeout: (deadline, new status, reason)."""
        if self.anchor is None:
            return None
        if self.status == "online" and self.stale_after == self.offline_after:
            return self.anchor + self.offline_after, "offline", "timeout:offline_after"
        if self.status == "online":
            return self.anchor + self.stale_after, "stale", "timeout:stale_after"
        if self.status == "stale":
            # Never before the status it leaves (stale set by hand, long after).
            deadline = max(self.anchor + self.offline_after, self.since)
            return deadline, "offline", "timeout:offline_after"
        return None

    def calm_at(self) -> float | None:
        """When the flapping flag clears: one window after the last change."""
        return self.history[-1] + self.flap_window if self.flapping else None

    def deadline(self) -> float | None:
        timeout = self.timeout()
        times = [t for t in (timeout and timeout[0], self.calm_at()) if t is not None]
        return min(times, default=None)

    def change(self, to: str, at: float, reason: str, source: str) -> None:
        if to == self.status:
            return
        self.history.append(at)
        within = [t for t in self.history if at - t < self.flap_window]
        self.flapping = self.flapping or len(within) > self.flap_threshold
        self.log.append((self.status, to, at, reason, source, self.flapping))
        self.status, self.since, self.reason, self.source = to, at, reason, source

    def tick(self, now: float) -> None:
        while True:
            timeout, calm = self.timeout(), self.calm_at()
            if calm is not None and calm <= now and (timeout is None or calm <= timeout[0]):
                self.flapping = False
            elif timeout is not None and timeout[0] <= now:
                deadline, to, reason = timeout
                self.change(to, deadline, reason, "timeout")
            else:
                return

    def observe(
        self, now: float, source: str, session: int | None, target: str | None, ok: bool
    ) -> None:
        self.tick(now)
        older = session is not None and self.session is not None and session < self.session
        if source in OWN_REASON:
            if source == "connect" and session is not None:
                # Older, or the session whose disconnect is the newest word: dead.
                if older or (session == self.session and self.source == "disconnect"):
                    return
                self.session = session
            self.last_seen = self.last_own = self.anchor = now
            self.change("online", now, OWN_REASON[source], source)
        elif source == "disconnect":
            if older:
                return
            if session is not None:
                self.session = session
            self.change("offline", now, "disconnected", source)
        elif source == "probe" and ok:
            self.last_seen = self.anchor = now
            self.change("online", now, "probe_ok", source)
        elif source == "probe":
            own_is_old = self.last_own is None or now - self.last_own >= self.stale_after
            if own_is_old and self.status in ONE_LEVEL_DOWN:
                self.change(ONE_LEVEL_DOWN[self.status], now, "probe_failed", source)
        else:
            assert source == "manual"
            assert target is not None
            if target == "online":
                self.anchor = now
            self.change(target, now, "manual", source)

    def take_log(self) -> list[Record]:
        log, self.log = self.log, []
        return log


def seconds(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Multiples of 0.25 s in [lo, hi]."""
    return st.integers(int(lo * 4), int(hi * 4)).map(lambda q: q / 4)


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    stale_after = draw(seconds(0.25, 60))
    offline_after = stale_after + draw(st.one_of(st.just(0.0), seconds(0.25, 300)))
    # A window equal to a threshold makes a flap clear and a timeout fall due at
    # the same instant, which is where their order matters.
    window = st.one_of(st.sampled_from([stale_after, offline_after]), seconds(0.25, 200))
    return Profile(
        name="model",
        stale_after=stale_after,
        offline_after=offline_after,
        flap_threshold=draw(st.integers(1, 4)),
        flap_window=draw(window),
    )


STARTS = seconds(0, 1000)
WAITS = st.one_of(st.sampled_from([0.0, 0.25]), seconds(0, 60), seconds(0, 1000))
#: A session relative to the current one: older, same (twice as likely: a duplicate
#: or reordered event of the live session is the interesting case), newer, or none.
SESSION_OFFSETS = st.sampled_from([None, -2, -1, 0, 0, 1, 2])
BEATS = st.sampled_from([Source.HEARTBEAT, Source.TELEMETRY])
OWN_SOURCES = st.sampled_from([Source.HEARTBEAT, Source.TELEMETRY, Source.CONNECT])
TARGETS = st.sampled_from([Status.ONLINE, Status.STALE, Status.OFFLINE])


def as_record(t: Transition) -> Record:
    return (t.from_status, t.to_status, t.at, t.reason, t.source, t.flapping)


class PresenceMachine(RuleBasedStateMachine):
    """One device; the clock only moves forward."""

    profile: Profile
    now: float
    state: DeviceState
    model: Model
    last_at: float

    @initialize(profile=profiles(), start=STARTS)
    def start(self, profile: Profile, start: float) -> None:
        self.profile, self.now, self.last_at = profile, start, start
        self.state = new_device(start)
        self.model = Model(
            profile.stale_after,
            profile.offline_after,
            profile.flap_threshold,
            profile.flap_window,
            since=start,
        )

    # --- time ------------------------------------------------------------------------

    @rule(dt=WAITS)
    def wait(self, dt: float) -> None:
        """Time passes unnoticed: the next observation must apply what fell due."""
        self.now += dt

    @rule(dt=WAITS)
    def sweep(self, dt: float) -> None:
        self.now += dt
        self.check(advance(self.state, self.profile, self.now), lambda: self.model.tick(self.now))

    @precondition(lambda self: self.model.deadline() is not None)
    @rule(early=st.sampled_from([0.0, 0.25]), sweep=st.booleans())
    def until_deadline(self, early: float, sweep: bool) -> None:
        """Move the clock to exactly the next deadline (or just before it)."""
        deadline = self.model.deadline()
        assert deadline is not None
        self.now = max(self.now, deadline - early)
        if sweep:
            self.check(
                advance(self.state, self.profile, self.now), lambda: self.model.tick(self.now)
            )

    # --- observations ------------------------------------------------------------------

    def session(self, offset: int | None) -> int | None:
        return None if offset is None else (self.model.session or 0) + offset

    @rule(source=BEATS)
    def beat(self, source: Source) -> None:
        self.feed(Observation(source))

    @rule(offset=SESSION_OFFSETS)
    def connect(self, offset: int | None) -> None:
        self.feed(Observation(Source.CONNECT, session=self.session(offset)))

    @rule(offset=SESSION_OFFSETS)
    def disconnect(self, offset: int | None) -> None:
        self.feed(Observation(Source.DISCONNECT, session=self.session(offset)))

    @rule()
    def probe_ok(self) -> None:
        self.feed(Observation(Source.PROBE, ok=True))

    @rule()
    def probe_failed(self) -> None:
        self.feed(Observation(Source.PROBE, ok=False))

    @precondition(lambda self: self.model.last_own is not None)
    @rule(early=st.sampled_from([0.0, 0.25]))
    def probe_failed_as_own_sign_ages(self, early: float) -> None:
        """A probe failure just when (or just before) the device's own sign turns
        stale_after old: the edge of probe authority."""
        assert self.model.last_own is not None
        self.now = max(self.now, self.model.last_own + self.profile.stale_after - early)
        self.feed(Observation(Source.PROBE, ok=False))

    # (`target` is a reserved argument name of @rule.)
    @rule(to=TARGETS)
    def manual(self, to: Status) -> None:
        self.feed(Observation(Source.MANUAL, status=to))

    @rule(to=st.sampled_from([None, Status.UNKNOWN]))
    def manual_without_target(self, to: Status | None) -> None:
        with pytest.raises(ValueError, match="target status"):
            observe(self.state, Observation(Source.MANUAL, status=to), self.profile, self.now)

    def feed(self, obs: Observation) -> None:
        step = observe(self.state, obs, self.profile, self.now)
        target = None if obs.status is None else str(obs.status)
        self.check(
            step,
            lambda: self.model.observe(self.now, str(obs.source), obs.session, target, obs.ok),
        )

    # --- checks ------------------------------------------------------------------------

    def check(self, step: Step, model_step: Callable[[], None]) -> None:
        before = self.state
        promised = next_deadline(before, self.profile)
        model_step()
        # Same transitions, in the same order, with the same stamps and flags: so every
        # timeout is stamped with the model's deadline, not with `now`.
        assert [as_record(t) for t in step.transitions] == self.model.take_log()
        for t in step.transitions:
            assert t.from_status is not t.to_status
            assert self.last_at <= t.at <= self.now
            self.last_at = t.at
            if t.source is Source.TIMEOUT:
                # Nothing happens before the deadline the engine promised.
                assert promised is not None
                assert promised <= t.at
        assert step.changed is (
            bool(step.transitions)
            or step.state.session != before.session
            or step.state.flapping != before.flapping
        )
        self.state = step.state

    @invariant()
    def agrees_with_model(self) -> None:
        s, m = self.state, self.model
        assert s.status == m.status
        assert s.since == m.since
        assert s.reason == m.reason
        assert s.source == m.source
        assert s.session == m.session
        assert s.last_seen == m.last_seen
        assert s.last_own == m.last_own
        assert s.flapping is m.flapping
        assert next_deadline(s, self.profile) == m.deadline()

    @invariant()
    def flap_history_is_bounded(self) -> None:
        assert len(self.state.flaps) <= self.profile.flap_threshold + 1


PresenceMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, database=None
)
TestPresenceModel = PresenceMachine.TestCase


# --- properties of next_deadline ------------------------------------------------------

OBSERVATIONS = st.one_of(
    st.builds(Observation, OWN_SOURCES, session=st.none() | st.integers(0, 4)),
    st.builds(Observation, st.just(Source.DISCONNECT), session=st.none() | st.integers(0, 4)),
    st.builds(Observation, st.just(Source.PROBE), ok=st.booleans()),
    st.builds(Observation, st.just(Source.MANUAL), status=TARGETS),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[Profile, DeviceState, float]:
    """A profile, a state the engine reached through random observations, and the time
    of the last one."""
    profile = draw(profiles())
    now = draw(STARTS)
    state = new_device(now)
    for observation in draw(st.lists(OBSERVATIONS, max_size=20)):
        now += draw(WAITS)
        state = observe(state, observation, profile, now).state
    return profile, state, now


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, database=None)


@PROPERTY_SETTINGS
@given(histories())
def test_next_deadline_is_never_before_since(history: tuple[Profile, DeviceState, float]) -> None:
    profile, state, now = history
    deadline = next_deadline(state, profile)
    if state.status is Status.ONLINE:
        assert deadline is not None
    if deadline is not None:
        assert deadline >= state.since
        assert deadline >= now  # observe() left nothing overdue


@PROPERTY_SETTINGS
@given(histories(), st.floats(0, 1, exclude_max=True))
def test_advance_before_next_deadline_changes_nothing(
    history: tuple[Profile, DeviceState, float], fraction: float
) -> None:
    profile, state, now = history
    deadline = next_deadline(state, profile)
    if deadline is None:
        for later in (now, now + 1.0, now + 1e9):
            assert advance(state, profile, later) == Step(state)
        return
    assume(deadline > now)
    t = now + (deadline - now) * fraction
    assume(t < deadline)
    assert advance(state, profile, t) == Step(state)
    # ...and at the deadline itself, something does change.
    assert advance(state, profile, deadline).changed
