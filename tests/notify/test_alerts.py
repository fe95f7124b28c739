"""The alert engine with a manual clock: exact episodes, no sleeping."""

from __future__ import annotations

from lastseen.notify.alerts import FIRED, OPENED, RESOLVED, AlertEngine
from lastseen.notify.models import AlertChange, AlertKind, AlertRule, AlertState, Target
from lastseen.presence import Status

ON, STALE, OFF = Status.ONLINE, Status.STALE, Status.OFFLINE
T0 = 1000.0


def engine(*rules: AlertRule) -> AlertEngine:
    return AlertEngine(rules)


def go(e: AlertEngine, a: Status, b: Status, at: float, device: str = "d") -> list[AlertChange]:
    return e.observe(device, {"site": "x"}, "default", a, b, at)


def actions(changes: list[AlertChange]) -> list[tuple[str, str]]:
    return [(c.action, c.alert.rule) for c in changes]


GONE = AlertRule("gone", AlertKind.OFFLINE_FOR, duration=2.0)


def test_offline_longer_than_d_fires_once_at_its_deadline_and_resolves_on_return() -> None:
    e = engine(GONE)
    assert go(e, ON, OFF, T0) == []
    assert e.next_deadline() == T0 + 2
    assert e.advance(T0 + 1.999) == []
    (opened,) = e.advance(T0 + 2.5)
    assert (opened.action, opened.alert.opened_at, opened.alert.state) == (
        OPENED,
        T0 + 2,
        AlertState.OPEN,
    )
    assert e.advance(T0 + 100) == []
    assert e.next_deadline() is None
    (resolved,) = go(e, OFF, ON, T0 + 120)
    assert (resolved.action, resolved.alert.resolved_at) == (RESOLVED, T0 + 120)
    assert resolved.alert.key == opened.alert.key


def test_a_one_second_blip_never_fires() -> None:
    e = engine(GONE)
    go(e, ON, OFF, T0)
    assert go(e, OFF, ON, T0 + 1) == []
    assert e.advance(T0 + 10) == []
    assert e.next_deadline() is None


def test_stale_for_counts_stale_and_offline_as_one_episode() -> None:
    e = engine(AlertRule("quiet", AlertKind.STALE_FOR, duration=5.0))
    go(e, ON, STALE, T0)
    go(e, STALE, OFF, T0 + 3)
    assert actions(e.advance(T0 + 5)) == [(OPENED, "quiet")]
    assert actions(go(e, OFF, ON, T0 + 9)) == [(RESOLVED, "quiet")]


def test_back_online_fires_only_when_an_alerted_episode_ends() -> None:
    e = engine(GONE, AlertRule("back", AlertKind.BACK_ONLINE))
    go(e, ON, OFF, T0)
    assert go(e, OFF, ON, T0 + 1) == []  # no alert was open: nothing to say
    go(e, ON, OFF, T0 + 10)
    e.advance(T0 + 13)
    changes = go(e, OFF, ON, T0 + 20)
    assert actions(changes) == [(RESOLVED, "gone"), (FIRED, "back")]
    assert changes[1].alert.state is AlertState.RESOLVED


def test_a_flapping_device_gets_one_alert_that_resolves_after_a_quiet_period() -> None:
    e = engine(AlertRule("flap", AlertKind.FLAPPING, count=3, window=10.0, quiet=5.0))
    opened = []
    for i in range(12):
        a, b = (ON, OFF) if i % 2 == 0 else (OFF, ON)
        opened += go(e, a, b, T0 + i)
        opened += e.advance(T0 + i)
    assert actions(opened) == [(OPENED, "flap")]
    assert e.next_deadline() == T0 + 11 + 5
    assert e.advance(T0 + 15.9) == []
    assert actions(e.advance(T0 + 16)) == [(RESOLVED, "flap")]
    # A new episode later is a new alert.
    later = [c for i in range(4) for c in go(e, ON, OFF, T0 + 100 + i)]
    assert actions(later) == [(OPENED, "flap")]
    assert later[0].alert.key != opened[0].alert.key


def test_slow_transitions_are_not_flapping() -> None:
    e = engine(AlertRule("flap", AlertKind.FLAPPING, count=3, window=10.0, quiet=5.0))
    changes = [c for i in range(10) for c in go(e, ON, OFF, T0 + i * 4) + e.advance(T0 + i * 4)]
    assert changes == []


def test_rules_target_labels_profiles_and_devices() -> None:
    e = engine(
        AlertRule("lab", AlertKind.OFFLINE_FOR, Target(labels=(("site", "y"),)), duration=1.0),
        AlertRule("one", AlertKind.OFFLINE_FOR, Target(devices=frozenset({"d"})), duration=1.0),
        AlertRule("prof", AlertKind.OFFLINE_FOR, Target(profiles=frozenset({"x"})), duration=1.0),
    )
    go(e, ON, OFF, T0)
    go(e, ON, OFF, T0, device="other")
    assert actions(e.advance(T0 + 1)) == [(OPENED, "one")]


def test_seed_and_restore_after_a_restart_open_nothing_twice() -> None:
    first = engine(GONE)
    go(first, ON, OFF, T0)
    (opened,) = first.advance(T0 + 2)
    again = engine(GONE)
    assert again.seed("d", {}, "default", OFF, T0) == []
    assert again.restore([opened.alert], T0 + 5) == []
    assert again.advance(T0 + 6) == []  # re-attached: not opened again
    assert actions(again.seed("d", {}, "default", ON, T0 + 7)) == [(RESOLVED, "gone")]


def test_an_alert_whose_episode_ended_while_down_resolves_on_restore() -> None:
    first = engine(GONE)
    go(first, ON, OFF, T0)
    (opened,) = first.advance(T0 + 2)
    again = engine(GONE)
    again.seed("d", {}, "default", ON, T0 + 3)
    assert actions(again.restore([opened.alert], T0 + 9)) == [(RESOLVED, "gone")]


def test_removing_a_rule_resolves_its_open_alerts_and_forget_resolves_a_device() -> None:
    e = engine(GONE, AlertRule("other", AlertKind.OFFLINE_FOR, duration=1.0))
    go(e, ON, OFF, T0)
    assert len(e.advance(T0 + 2)) == 2
    assert e.open_counts() == {"gone": 1, "other": 1}
    assert actions(e.set_rules([GONE], T0 + 3)) == [(RESOLVED, "other")]
    assert actions(e.forget("d", T0 + 4)) == [(RESOLVED, "gone")]
