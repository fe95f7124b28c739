"""Every presence rule, one table row each: status x observation -> result.

The rows are the table in ``docs/presence-model.md``; if you change a rule, change
both. Each row asserts the whole resulting state, the exact transitions (with their
``at`` stamps, reasons and sources) and ``Step.changed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from lastseen.presence import (
    DeviceState,
    Observation,
    Profile,
    Reason,
    Source,
    Status,
    Step,
    Transition,
    advance,
    new_device,
    next_deadline,
    observe,
)
from tests.presence.states import NOW, PROFILE, SESSION, STATES

ONLINE, STALE, OFFLINE, UNKNOWN = Status.ONLINE, Status.STALE, Status.OFFLINE, Status.UNKNOWN

HEARTBEAT = Observation(Source.HEARTBEAT)
TELEMETRY = Observation(Source.TELEMETRY)
CONNECT = Observation(Source.CONNECT)
CONNECT_SAME = Observation(Source.CONNECT, session=SESSION)
CONNECT_NEWER = Observation(Source.CONNECT, session=SESSION + 1)
CONNECT_OLDER = Observation(Source.CONNECT, session=SESSION - 1)
DISCONNECT = Observation(Source.DISCONNECT)
DISCONNECT_SAME = Observation(Source.DISCONNECT, session=SESSION)
DISCONNECT_NEWER = Observation(Source.DISCONNECT, session=SESSION + 1)
DISCONNECT_OLDER = Observation(Source.DISCONNECT, session=SESSION - 1)
PROBE_OK = Observation(Source.PROBE, ok=True)
PROBE_FAILED = Observation(Source.PROBE, ok=False)


def manual(status: Status | None) -> Observation:
    return Observation(Source.MANUAL, status=status)


#: What an observation moves besides the status.
OWN_SIGN = {"last_seen": NOW, "last_own": NOW, "anchor": NOW}
PROBE_SIGN = {"last_seen": NOW, "anchor": NOW}
REARM = {"anchor": NOW}


@dataclass(frozen=True)
class Expect:
    """The outcome of one row: the new status (None: no transition) and the fields
    that move. ``changed`` defaults to "a transition happened or the session moved"."""

    to: Status | None = None
    reason: Reason | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def state(self, start: DeviceState, source: Source) -> DeviceState:
        state = replace(start, **self.fields)
        if self.to is None:
            return state
        return replace(
            state,
            status=self.to,
            since=NOW,
            reason=self.reason,
            source=source,
            flaps=(*start.flaps, NOW),
        )

    def transitions(self, start: DeviceState, source: Source) -> tuple[Transition, ...]:
        if self.to is None or self.reason is None:
            return ()
        return (Transition(start.status, self.to, NOW, self.reason, source),)

    def changed(self, start: DeviceState) -> bool:
        return self.to is not None or self.fields.get("session", start.session) != start.session

    def label(self) -> str:
        if self.to is not None:
            return str(self.to)
        return "stays" if self.fields else "ignored"


def go(to: Status, reason: Reason, **fields: object) -> Expect:
    return Expect(to, reason, fields)


def stays(**fields: object) -> Expect:
    return Expect(None, None, fields)


IGNORED = Expect()


def row(start: str, name: str, observation: Observation, expect: Expect) -> Row:
    return Row(start, name, observation, expect)


@dataclass(frozen=True)
class Row:
    start: str
    name: str
    observation: Observation
    expect: Expect

    def param(self) -> object:
        return pytest.param(
            self.start,
            self.observation,
            self.expect,
            id=f"{self.start}+{self.name}->{self.expect.label()}",
        )


RULES = [
    # The device's own word makes it online at once, whatever it was.
    row("unknown", "heartbeat", HEARTBEAT, go(ONLINE, Reason.HEARTBEAT, **OWN_SIGN)),
    row("online", "heartbeat", HEARTBEAT, stays(**OWN_SIGN)),
    row("stale", "heartbeat", HEARTBEAT, go(ONLINE, Reason.HEARTBEAT, **OWN_SIGN)),
    row("offline", "heartbeat", HEARTBEAT, go(ONLINE, Reason.HEARTBEAT, **OWN_SIGN)),
    row("unknown", "telemetry", TELEMETRY, go(ONLINE, Reason.TELEMETRY, **OWN_SIGN)),
    row("online", "telemetry", TELEMETRY, stays(**OWN_SIGN)),
    row("stale", "telemetry", TELEMETRY, go(ONLINE, Reason.TELEMETRY, **OWN_SIGN)),
    row("offline", "telemetry", TELEMETRY, go(ONLINE, Reason.TELEMETRY, **OWN_SIGN)),
    # A connect without a session number leaves the session alone.
    row("unknown", "connect", CONNECT, go(ONLINE, Reason.CONNECTED, **OWN_SIGN)),
    row("online", "connect", CONNECT, stays(**OWN_SIGN)),
    row("stale", "connect", CONNECT, go(ONLINE, Reason.CONNECTED, **OWN_SIGN)),
    row("offline", "connect", CONNECT, go(ONLINE, Reason.CONNECTED, **OWN_SIGN)),
    # A connect of the current session is a sign of life like any other, unless that
    # session's disconnect was the last word ("offline" was disconnected in session 5):
    # then it is a late or duplicate birth of a dead connection.
    row(
        "unknown",
        "connect(5)",
        CONNECT_SAME,
        go(ONLINE, Reason.CONNECTED, session=SESSION, **OWN_SIGN),
    ),
    row("online", "connect(5)", CONNECT_SAME, stays(**OWN_SIGN)),
    row("stale", "connect(5)", CONNECT_SAME, go(ONLINE, Reason.CONNECTED, **OWN_SIGN)),
    row("offline", "connect(5)", CONNECT_SAME, IGNORED),
    # A connect of a newer session adopts it.
    row(
        "unknown",
        "connect(6)",
        CONNECT_NEWER,
        go(ONLINE, Reason.CONNECTED, session=SESSION + 1, **OWN_SIGN),
    ),
    row("online", "connect(6)", CONNECT_NEWER, stays(session=SESSION + 1, **OWN_SIGN)),
    row(
        "stale",
        "connect(6)",
        CONNECT_NEWER,
        go(ONLINE, Reason.CONNECTED, session=SESSION + 1, **OWN_SIGN),
    ),
    row(
        "offline",
        "connect(6)",
        CONNECT_NEWER,
        go(ONLINE, Reason.CONNECTED, session=SESSION + 1, **OWN_SIGN),
    ),
    # A connect of an older session, delivered late, is old news: nothing moves, not
    # even last_seen. With no session known yet, nothing is older.
    row(
        "unknown",
        "connect(4)",
        CONNECT_OLDER,
        go(ONLINE, Reason.CONNECTED, session=SESSION - 1, **OWN_SIGN),
    ),
    row("online", "connect(4)", CONNECT_OLDER, IGNORED),
    row("stale", "connect(4)", CONNECT_OLDER, IGNORED),
    row("offline", "connect(4)", CONNECT_OLDER, IGNORED),
    # A disconnect without a session number means "the current session".
    row("unknown", "disconnect", DISCONNECT, go(OFFLINE, Reason.DISCONNECTED)),
    row("online", "disconnect", DISCONNECT, go(OFFLINE, Reason.DISCONNECTED)),
    row("stale", "disconnect", DISCONNECT, go(OFFLINE, Reason.DISCONNECTED)),
    row("offline", "disconnect", DISCONNECT, IGNORED),
    # A disconnect of the current session: offline at once.
    row(
        "unknown",
        "disconnect(5)",
        DISCONNECT_SAME,
        go(OFFLINE, Reason.DISCONNECTED, session=SESSION),
    ),
    row("online", "disconnect(5)", DISCONNECT_SAME, go(OFFLINE, Reason.DISCONNECTED)),
    row("stale", "disconnect(5)", DISCONNECT_SAME, go(OFFLINE, Reason.DISCONNECTED)),
    row("offline", "disconnect(5)", DISCONNECT_SAME, IGNORED),
    # A disconnect of an older session (a late last will after a reconnect): ignored.
    row(
        "unknown",
        "disconnect(4)",
        DISCONNECT_OLDER,
        go(OFFLINE, Reason.DISCONNECTED, session=SESSION - 1),
    ),
    row("online", "disconnect(4)", DISCONNECT_OLDER, IGNORED),
    row("stale", "disconnect(4)", DISCONNECT_OLDER, IGNORED),
    row("offline", "disconnect(4)", DISCONNECT_OLDER, IGNORED),
    # A disconnect of a newer session (its connect is still on the way): offline, and
    # the newer session becomes the current one.
    row(
        "unknown",
        "disconnect(6)",
        DISCONNECT_NEWER,
        go(OFFLINE, Reason.DISCONNECTED, session=SESSION + 1),
    ),
    row(
        "online",
        "disconnect(6)",
        DISCONNECT_NEWER,
        go(OFFLINE, Reason.DISCONNECTED, session=SESSION + 1),
    ),
    row(
        "stale",
        "disconnect(6)",
        DISCONNECT_NEWER,
        go(OFFLINE, Reason.DISCONNECTED, session=SESSION + 1),
    ),
    row("offline", "disconnect(6)", DISCONNECT_NEWER, stays(session=SESSION + 1)),
    # A probe success revives and re-arms, but is not the device's own sign.
    row("unknown", "probe-ok", PROBE_OK, go(ONLINE, Reason.PROBE_OK, **PROBE_SIGN)),
    row("online", "probe-ok", PROBE_OK, stays(**PROBE_SIGN)),
    row("stale", "probe-ok", PROBE_OK, go(ONLINE, Reason.PROBE_OK, **PROBE_SIGN)),
    row("offline", "probe-ok", PROBE_OK, go(ONLINE, Reason.PROBE_OK, **PROBE_SIGN)),
    # A probe failure degrades one level, only if the device's own sign is at least
    # stale_after old (or it never gave one).
    row("unknown", "probe-failed", PROBE_FAILED, go(OFFLINE, Reason.PROBE_FAILED)),
    row("online", "probe-failed(own-fresh)", PROBE_FAILED, IGNORED),
    row("online-by-probe", "probe-failed(own-old)", PROBE_FAILED, go(STALE, Reason.PROBE_FAILED)),
    row("stale-by-hand", "probe-failed(own-fresh)", PROBE_FAILED, IGNORED),
    row("stale", "probe-failed(own-old)", PROBE_FAILED, go(OFFLINE, Reason.PROBE_FAILED)),
    row("offline", "probe-failed", PROBE_FAILED, IGNORED),
    # Manual: to any status but unknown; manual online re-arms the deadlines from now.
    row("unknown", "manual(online)", manual(ONLINE), go(ONLINE, Reason.MANUAL, **REARM)),
    row("online", "manual(online)", manual(ONLINE), stays(**REARM)),
    row("stale", "manual(online)", manual(ONLINE), go(ONLINE, Reason.MANUAL, **REARM)),
    row("offline", "manual(online)", manual(ONLINE), go(ONLINE, Reason.MANUAL, **REARM)),
    row("unknown", "manual(stale)", manual(STALE), go(STALE, Reason.MANUAL)),
    row("online", "manual(stale)", manual(STALE), go(STALE, Reason.MANUAL)),
    row("stale", "manual(stale)", manual(STALE), IGNORED),
    row("offline", "manual(stale)", manual(STALE), go(STALE, Reason.MANUAL)),
    row("unknown", "manual(offline)", manual(OFFLINE), go(OFFLINE, Reason.MANUAL)),
    row("online", "manual(offline)", manual(OFFLINE), go(OFFLINE, Reason.MANUAL)),
    row("stale", "manual(offline)", manual(OFFLINE), go(OFFLINE, Reason.MANUAL)),
    row("offline", "manual(offline)", manual(OFFLINE), IGNORED),
]


@pytest.mark.parametrize(("start", "observation", "expect"), [r.param() for r in RULES])
def test_rule(start: str, observation: Observation, expect: Expect) -> None:
    state = STATES[start]
    step = observe(state, observation, PROFILE, NOW)
    assert step.transitions == expect.transitions(state, observation.source)
    assert step.state == expect.state(state, observation.source)
    assert step.changed is expect.changed(state)


def test_every_status_meets_every_observation() -> None:
    seen = {(r.start, r.observation) for r in RULES}
    every = {
        (start, r.observation) for start in ("unknown", "online", "stale", "offline") for r in RULES
    }
    assert every <= seen


@pytest.mark.parametrize("target", [None, UNKNOWN], ids=["no-target", "unknown"])
@pytest.mark.parametrize("start", ["unknown", "online", "stale", "offline"])
def test_manual_needs_a_real_target(start: str, target: Status | None) -> None:
    with pytest.raises(ValueError, match="needs a target status other than unknown"):
        observe(STATES[start], manual(target), PROFILE, NOW)


def test_timeout_is_not_an_observation() -> None:
    with pytest.raises(ValueError, match="timeout is not an observation source"):
        observe(STATES["online"], Observation(Source.TIMEOUT), PROFILE, NOW)


# --- the named states are real -------------------------------------------------------


def run(
    profile: Profile, events: list[tuple[float, Observation]], start: float = 0.0
) -> tuple[DeviceState, list[Transition]]:
    """Feed ``events`` (time, observation) to a new device; return its state and every
    transition on the way."""
    state = new_device(start)
    transitions: list[Transition] = []
    for now, observation in events:
        step = observe(state, observation, profile, now)
        state = step.state
        transitions.extend(step.transitions)
    return state, transitions


#: How the engine gets to each named state (then time runs on to NOW).
REACHED: dict[str, list[tuple[float, Observation]]] = {
    "unknown": [],
    "online": [(190.0, CONNECT_SAME)],
    "online-by-probe": [(100.0, CONNECT_SAME), (190.0, PROBE_OK)],
    "stale": [(100.0, CONNECT_SAME)],
    "stale-by-hand": [(190.0, CONNECT_SAME), (195.0, manual(STALE))],
    "offline": [(100.0, CONNECT_SAME), (130.0, DISCONNECT_SAME)],
}


@pytest.mark.parametrize("name", sorted(STATES))
def test_named_states_are_reachable(name: str) -> None:
    state, _ = run(PROFILE, REACHED[name])
    assert advance(state, PROFILE, NOW).state == STATES[name]
    # ...and nothing is due at NOW, so each table row tests exactly one rule.
    assert advance(STATES[name], PROFILE, NOW) == Step(STATES[name])


def test_new_device() -> None:
    state = new_device(12.5)
    assert state == DeviceState(status=UNKNOWN, since=12.5)
    assert next_deadline(state, PROFILE) is None


# --- sessions ---------------------------------------------------------------------------


def test_late_will_of_an_older_session_does_not_mark_a_reconnected_device_offline() -> None:
    # Seeds 000/003: the device reconnects (session 6) before the broker delivers the
    # last will of its dead connection (session 5).
    state, transitions = run(
        PROFILE, [(100.0, CONNECT_SAME), (120.0, CONNECT_NEWER), (120.5, DISCONNECT_SAME)]
    )
    assert state.status is ONLINE
    assert state.session == SESSION + 1
    assert len(transitions) == 1


@pytest.mark.parametrize(
    "birth", [CONNECT_SAME, CONNECT_NEWER], ids=["duplicate-birth", "will-overtook-birth"]
)
def test_birth_of_a_session_already_disconnected_is_ignored(birth: Observation) -> None:
    # A duplicate birth of session 5 after its will; or the will of session 6
    # overtaking its own birth. Either way that connection is dead.
    will = Observation(Source.DISCONNECT, session=birth.session)
    state, _ = run(PROFILE, [(100.0, CONNECT_SAME), (130.0, will)])
    step = observe(state, birth, PROFILE, 130.25)
    assert step == Step(state)
    # The next session comes online as usual.
    assert birth.session is not None
    reconnect = Observation(Source.CONNECT, session=birth.session + 1)
    step = observe(state, reconnect, PROFILE, 131.0)
    assert step.transitions == (
        Transition(OFFLINE, ONLINE, 131.0, Reason.CONNECTED, Source.CONNECT),
    )


@pytest.mark.parametrize(
    "events",
    [
        [(100.0, CONNECT_SAME), (1000.0, CONNECT_SAME)],
        [(100.0, CONNECT_SAME), (130.0, manual(OFFLINE)), (131.0, CONNECT_SAME)],
        [
            (100.0, CONNECT_SAME),
            (130.0, DISCONNECT_SAME),
            (131.0, HEARTBEAT),
            (1000.0, CONNECT_SAME),
        ],
    ],
    ids=["after-timeouts", "after-manual-offline", "after-a-later-heartbeat"],
)
def test_connect_of_the_current_session_revives_when_no_disconnect_was_the_last_word(
    events: list[tuple[float, Observation]],
) -> None:
    state, transitions = run(PROFILE, events)
    assert state.status is ONLINE
    assert transitions[-1].reason is Reason.CONNECTED


# --- probe authority at its boundary -------------------------------------------------


@pytest.mark.parametrize(
    ("failed_at", "status"),
    [(139.75, ONLINE), (140.0, STALE)],
    ids=["own-sign-39.75s-old-ignored", "own-sign-40s-old-degrades"],
)
def test_probe_failure_needs_own_sign_older_than_stale_after(
    failed_at: float, status: Status
) -> None:
    # Heartbeat at 100, a probe success at 130 re-arms the deadlines to 170, so the
    # device is still online at 140 and only its own sign's age decides.
    state, _ = run(PROFILE, [(100.0, HEARTBEAT), (130.0, PROBE_OK)])
    step = observe(state, PROBE_FAILED, PROFILE, failed_at)
    assert step.state.status is status
    if status is STALE:
        assert step.transitions == (
            Transition(ONLINE, STALE, 140.0, Reason.PROBE_FAILED, Source.PROBE),
        )
        # A probe failure does not move the deadlines: offline at 130 + 300.
        assert next_deadline(step.state, PROFILE) == 430.0
    else:
        assert step == Step(state)


def test_late_probe_failure_cannot_overwrite_a_fresh_heartbeat() -> None:
    # Seed 001: the ping started before the heartbeat and failed after it.
    state, _ = run(PROFILE, [(100.0, HEARTBEAT), (300.0, HEARTBEAT)])
    step = observe(state, PROBE_FAILED, PROFILE, 303.0)
    assert step == Step(state)


# --- deadlines ------------------------------------------------------------------------


def online_at(t: float, profile: Profile = PROFILE) -> DeviceState:
    return observe(new_device(0.0), HEARTBEAT, profile, t).state


def timeout(frm: Status, to: Status, at: float, *, flapping: bool = False) -> Transition:
    reason = Reason.STALE_TIMEOUT if to is STALE else Reason.OFFLINE_TIMEOUT
    return Transition(frm, to, at, reason, Source.TIMEOUT, flapping)


def test_online_goes_stale_at_anchor_plus_stale_after() -> None:
    state = online_at(100.0)
    assert next_deadline(state, PROFILE) == 140.0
    assert advance(state, PROFILE, 139.999) == Step(state)
    step = advance(state, PROFILE, 140.0)
    assert step.transitions == (timeout(ONLINE, STALE, 140.0),)
    assert step.state == replace(
        state,
        status=STALE,
        since=140.0,
        reason=Reason.STALE_TIMEOUT,
        source=Source.TIMEOUT,
        flaps=(100.0, 140.0),
    )
    assert step.changed


def test_stale_goes_offline_at_anchor_plus_offline_after() -> None:
    state = advance(online_at(100.0), PROFILE, 140.0).state
    assert next_deadline(state, PROFILE) == 400.0
    assert advance(state, PROFILE, 399.999) == Step(state)
    step = advance(state, PROFILE, 400.0)
    assert step.transitions == (timeout(STALE, OFFLINE, 400.0),)
    assert step.state.status is OFFLINE
    assert step.state.since == 400.0
    assert step.state.reason is Reason.OFFLINE_TIMEOUT
    assert step.state.source is Source.TIMEOUT
    assert step.state.last_seen == 100.0
    assert next_deadline(step.state, PROFILE) is None


def test_equal_thresholds_go_straight_offline() -> None:
    profile = Profile(stale_after=60.0, offline_after=60.0)
    state = online_at(100.0, profile)
    assert next_deadline(state, profile) == 160.0
    assert advance(state, profile, 159.999) == Step(state)
    step = advance(state, profile, 10_000.0)
    assert step.transitions == (timeout(ONLINE, OFFLINE, 160.0),)
    assert step.state.since == 160.0


@pytest.mark.parametrize("late", [0.0, 0.001, 35.0, 259.75], ids=lambda s: f"swept-{s}s-late")
def test_timeout_is_stamped_with_its_deadline(late: float) -> None:
    step = advance(online_at(100.0), PROFILE, 140.0 + late)
    assert [t.at for t in step.transitions] == [140.0]
    assert step.state.since == 140.0


def test_long_gap_applies_both_deadlines_in_order() -> None:
    # The hub was down for a day: the sweep on restart records both timeouts at
    # their own deadlines, in order.
    step = advance(online_at(100.0), PROFILE, 86_400.0)
    assert step.transitions == (timeout(ONLINE, STALE, 140.0), timeout(STALE, OFFLINE, 400.0))
    assert step.state.status is OFFLINE
    assert step.state.since == 400.0
    assert step.state.flaps == (100.0, 140.0, 400.0)
    assert advance(step.state, PROFILE, 86_400.0) == Step(step.state)


def test_observe_applies_due_deadlines_before_the_observation() -> None:
    step = observe(online_at(100.0), HEARTBEAT, PROFILE, 1000.0)
    assert step.transitions == (
        timeout(ONLINE, STALE, 140.0),
        timeout(STALE, OFFLINE, 400.0),
        Transition(OFFLINE, ONLINE, 1000.0, Reason.HEARTBEAT, Source.HEARTBEAT),
    )
    assert step.state.since == 1000.0
    assert step.state.anchor == 1000.0


def test_ignored_observation_still_applies_due_deadlines() -> None:
    state = observe(new_device(0.0), CONNECT_SAME, PROFILE, 100.0).state
    step = observe(state, DISCONNECT_OLDER, PROFILE, 1000.0)
    assert step.transitions == (timeout(ONLINE, STALE, 140.0), timeout(STALE, OFFLINE, 400.0))
    assert step.state.session == SESSION
    assert step.changed


def test_heartbeat_exactly_on_the_deadline_comes_after_it() -> None:
    # A deadline is due when now >= deadline, and due deadlines go first.
    step = observe(online_at(100.0), HEARTBEAT, PROFILE, 140.0)
    assert step.transitions == (
        timeout(ONLINE, STALE, 140.0),
        Transition(STALE, ONLINE, 140.0, Reason.HEARTBEAT, Source.HEARTBEAT),
    )


def test_heartbeats_re_arm_the_deadlines() -> None:
    state, transitions = run(PROFILE, [(100.0, HEARTBEAT), (130.0, HEARTBEAT), (160.0, TELEMETRY)])
    assert len(transitions) == 1
    assert state.since == 100.0
    assert next_deadline(state, PROFILE) == 200.0


def test_stale_set_by_hand_long_after_offline_is_not_stamped_in_the_past() -> None:
    # Offline at 130 (anchor 100), set stale by hand at 1000: anchor + offline_after
    # (400) is already past, but the timeout may not precede the status it leaves.
    state = observe(STATES["offline"], manual(STALE), PROFILE, 1000.0).state
    assert next_deadline(state, PROFILE) == 1000.0
    step = advance(state, PROFILE, 1000.0)
    assert step.transitions == (timeout(STALE, OFFLINE, 1000.0),)


def test_manual_online_re_arms_from_now() -> None:
    step = observe(STATES["offline"], manual(ONLINE), PROFILE, NOW)
    assert step.state.last_seen == 100.0  # a person is not a sign of life
    assert next_deadline(step.state, PROFILE) == NOW + 40.0


def test_manual_stale_without_a_sign_of_life_has_no_deadline() -> None:
    state = observe(STATES["unknown"], manual(STALE), PROFILE, NOW).state
    assert next_deadline(state, PROFILE) is None
    assert advance(state, PROFILE, 1e9) == Step(state)


@pytest.mark.parametrize(
    ("start", "profile", "deadline"),
    [
        ("unknown", PROFILE, None),
        ("online", PROFILE, 190.0 + 40.0),
        ("online", Profile(stale_after=60.0, offline_after=60.0), 190.0 + 60.0),
        ("online-by-probe", PROFILE, 190.0 + 40.0),
        ("stale", PROFILE, 100.0 + 300.0),
        ("stale-by-hand", PROFILE, 190.0 + 300.0),
        ("offline", PROFILE, None),
    ],
    ids=[
        "unknown-never",
        "online-stale_after",
        "online-equal-thresholds-offline_after",
        "online-by-probe-stale_after",
        "stale-offline_after",
        "stale-by-hand-offline_after",
        "offline-never",
    ],
)
def test_next_deadline(start: str, profile: Profile, deadline: float | None) -> None:
    state = STATES[start]
    assert next_deadline(state, profile) == deadline
    if deadline is not None:
        assert advance(state, profile, deadline).transitions


# --- flapping ---------------------------------------------------------------------------

#: More than 2 transitions within 100 s is flapping.
FLAPPY = Profile(stale_after=40.0, offline_after=300.0, flap_threshold=2, flap_window=100.0)


def flaps(profile: Profile, times: list[float]) -> tuple[DeviceState, list[Transition]]:
    """Alternate heartbeat/disconnect at ``times``: one transition each."""
    events = [(t, HEARTBEAT if i % 2 == 0 else DISCONNECT) for i, t in enumerate(times)]
    return run(profile, events)


def test_flapping_set_when_more_than_threshold_transitions_within_window() -> None:
    state, transitions = flaps(FLAPPY, [0.0, 10.0, 20.0])
    assert [t.flapping for t in transitions] == [False, False, True]
    assert state.flapping


def test_threshold_transitions_are_not_flapping() -> None:
    state, transitions = flaps(FLAPPY, [0.0, 10.0])
    assert not state.flapping
    assert not any(t.flapping for t in transitions)


@pytest.mark.parametrize(
    ("third", "flapping"),
    [(99.75, True), (100.0, False)],
    ids=["inside-window", "first-left-window"],
)
def test_flap_window_is_open_at_its_start(third: float, flapping: bool) -> None:
    state, transitions = flaps(FLAPPY, [0.0, 10.0, third])
    assert state.flapping is flapping
    assert transitions[-1].flapping is flapping


def test_flapping_cleared_after_stable_for_the_window() -> None:
    state, _ = flaps(FLAPPY, [0.0, 10.0, 20.0, 30.0])
    assert state.status is OFFLINE
    assert state.flapping
    assert next_deadline(state, FLAPPY) == 130.0
    assert advance(state, FLAPPY, 129.999) == Step(state)
    assert advance(state, FLAPPY, 130.0) == Step(replace(state, flapping=False), (), True)


def test_flapping_sticks_while_changes_continue() -> None:
    state, _ = flaps(FLAPPY, [0.0, 10.0, 20.0, 30.0])
    # Only 2 transitions within (26, 126], but the device was not stable for 100 s.
    step = observe(state, HEARTBEAT, FLAPPY, 126.0)
    assert step.transitions == (
        Transition(OFFLINE, ONLINE, 126.0, Reason.HEARTBEAT, Source.HEARTBEAT, flapping=True),
    )
    step = observe(step.state, DISCONNECT, FLAPPY, 127.0)
    assert step.state.flapping
    assert next_deadline(step.state, FLAPPY) == 227.0


def test_flapping_clears_before_a_transition_at_the_same_instant() -> None:
    state, _ = flaps(FLAPPY, [0.0, 10.0, 20.0, 30.0])
    step = observe(state, HEARTBEAT, FLAPPY, 130.0)
    assert step.transitions == (
        Transition(OFFLINE, ONLINE, 130.0, Reason.HEARTBEAT, Source.HEARTBEAT, flapping=False),
    )
    assert not step.state.flapping


@pytest.mark.parametrize(
    "window", [30.0, 40.0], ids=["clear-before-timeout", "clear-at-the-timeout-instant"]
)
def test_flapping_clears_first_when_not_later_than_the_timeout(window: float) -> None:
    profile = replace(FLAPPY, flap_window=window)
    state, _ = flaps(profile, [0.0, 10.0, 20.0])  # online since 20, flapping
    assert state.flapping
    # Clear at 20 + window, stale at 60.
    assert next_deadline(state, profile) == 20.0 + window
    step = advance(state, profile, 1000.0)
    assert step.transitions == (timeout(ONLINE, STALE, 60.0), timeout(STALE, OFFLINE, 320.0))
    assert not step.state.flapping


def test_timeout_while_flapping_carries_the_flag_and_postpones_the_clear() -> None:
    state, _ = flaps(FLAPPY, [0.0, 10.0, 20.0])  # online since 20, flapping
    # Stale at 60 comes before the clear at 120.
    assert next_deadline(state, FLAPPY) == 60.0
    step = advance(state, FLAPPY, 60.0)
    assert step.transitions == (timeout(ONLINE, STALE, 60.0, flapping=True),)
    assert next_deadline(step.state, FLAPPY) == 160.0
    step = advance(step.state, FLAPPY, 1000.0)
    assert step.transitions == (timeout(STALE, OFFLINE, 320.0),)
    assert not step.state.flapping


def test_flap_history_is_bounded() -> None:
    state, transitions = flaps(FLAPPY, [float(t) for t in range(50)])
    assert len(transitions) == 50
    assert state.flaps == (47.0, 48.0, 49.0)
