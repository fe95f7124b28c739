"""The alert engine: rules + transitions + now → alerts opened and resolved. No I/O.

Theory of operation
-------------------
An *episode* is a stretch of time a rule cares about: for ``offline_for`` the device
is offline; for ``stale_for`` it is not online (stale or offline); for ``flapping``
it keeps changing status. An episode alerts at most once and its alert resolves
when the episode ends, so a rule never fires twice for one outage and a blip
shorter than the rule's duration never fires at all.

* ``offline_for`` / ``stale_for``: the episode starts at the transition into it; its
  deadline is start + duration. The alert opens when the deadline passes while the
  episode lasts, stamped with the *deadline* (not the moment the shell noticed),
  and resolves at the transition that ends the episode.
* ``flapping``: more than ``count`` transitions within ``window`` seconds opens one
  alert; every further transition pushes its quiet deadline on, and the alert
  resolves ``quiet`` seconds after the last transition (damping: one alert per
  flapping episode, not one per flap).
* ``back_online``: a one-shot alert ("fired": opened and resolved at once) when an
  offline_for / stale_for episode that had an open alert ends.

Deadlines live in a heap like the hub's: ``next_deadline()`` says when to call
``advance(now)`` next; stale heap entries are skipped when they come up. Alert keys
are deterministic (rule, device, episode start), so several hub instances running
this engine over the same transitions agree on each alert's identity and a store
that inserts by key opens it once.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from lastseen.notify.models import Alert, AlertChange, AlertKind, AlertRule, AlertState
from lastseen.presence import Status

#: Statuses that make up an episode, per duration rule kind.
EPISODE_STATUSES: Mapping[AlertKind, frozenset[Status]] = {
    AlertKind.OFFLINE_FOR: frozenset({Status.OFFLINE}),
    AlertKind.STALE_FOR: frozenset({Status.STALE, Status.OFFLINE}),
}

OPENED, RESOLVED, FIRED = "opened", "resolved", "fired"


def alert_key(rule: str, device_id: str, start: float) -> str:
    """The identity of the alert of one episode (millisecond start)."""
    return f"{rule}/{device_id}/{round(start * 1000)}"


@dataclass(slots=True)
class _Episode:
    start: float
    deadline: float
    alert: Alert | None = None


@dataclass(slots=True)
class _Flaps:
    times: deque[float] = field(default_factory=deque)
    deadline: float | None = None
    alert: Alert | None = None


class AlertEngine:
    """Per-(rule, device) episode state and a deadline heap, driven by the shell."""

    def __init__(self, rules: Iterable[AlertRule] = ()) -> None:
        self.rules: dict[str, AlertRule] = {rule.name: rule for rule in rules}
        self._episodes: dict[tuple[str, str], _Episode] = {}
        self._flaps: dict[tuple[str, str], _Flaps] = {}
        self._heap: list[tuple[float, int, str, str]] = []
        self._order = itertools.count()

    # ------------------------------------------------------------------ rules

    def set_rules(self, rules: Iterable[AlertRule], now: float) -> list[AlertChange]:
        """Replace the rules; open alerts of rules that are gone (or changed) resolve."""
        new = {rule.name: rule for rule in rules}
        changes: list[AlertChange] = []
        for name, old in self.rules.items():
            if new.get(name) == old:
                continue
            for states in (self._episodes, self._flaps):
                for key in [k for k in states if k[0] == name]:
                    alert = states.pop(key).alert
                    if alert is not None:
                        changes.append(_resolve(alert, now, "rule_changed"))
        self.rules = new
        return changes

    def _matching(self, device_id: str, labels: Mapping[str, str], profile: str) -> list[AlertRule]:
        return [r for r in self.rules.values() if r.target.matches(device_id, labels, profile)]

    # ------------------------------------------------------------------ inputs

    def seed(
        self, device_id: str, labels: Mapping[str, str], profile: str, status: Status, since: float
    ) -> list[AlertChange]:
        """A device's current status (at start-up or after a rule change): starts the
        episodes it is in, back-dated to ``since``, and ends those it has left (their
        alerts resolve at ``since``). Counts no transition."""
        changes: list[AlertChange] = []
        for rule in self._matching(device_id, labels, profile):
            statuses = EPISODE_STATUSES.get(rule.kind)
            if not statuses:
                continue
            key = (rule.name, device_id)
            episode = self._episodes.get(key)
            if status in statuses:
                if episode is None:
                    self._start(rule, device_id, since)
            elif episode is not None:
                del self._episodes[key]
                if episode.alert is not None:
                    changes.append(_resolve(episode.alert, since, f"now {status.value}"))
        return changes

    def episode_statuses(self) -> frozenset[Status]:
        """The statuses an episode of some rule is made of (what ``seed`` looks for)."""
        return frozenset().union(*(EPISODE_STATUSES.get(r.kind, ()) for r in self.rules.values()))

    def devices(self) -> set[str]:
        """Devices the engine holds state for."""
        return {key[1] for states in (self._episodes, self._flaps) for key in states}

    def open_counts(self) -> dict[str, int]:
        """Open alerts by rule (for the metrics gauge)."""
        counts = dict.fromkeys(self.rules, 0)
        for states in (self._episodes, self._flaps):
            for (rule, _), state in states.items():
                if state.alert is not None:
                    counts[rule] = counts.get(rule, 0) + 1
        return counts

    def restore(self, alerts: Iterable[Alert], now: float) -> list[AlertChange]:
        """Re-attach open alerts from the store (after ``seed``). One whose episode is
        over (it ended while the hub was down) resolves at ``now``."""
        changes: list[AlertChange] = []
        for alert in alerts:
            rule = self.rules.get(alert.rule)
            key = (alert.rule, alert.device_id)
            episode = self._episodes.get(key)
            if rule is not None and rule.kind is AlertKind.FLAPPING:
                flaps = self._flaps.setdefault(key, _Flaps())
                flaps.alert = alert
                self._schedule_flaps(key, flaps, now + rule.quiet)
            elif episode is not None and alert_key(*key, episode.start) == alert.key:
                episode.alert = alert
            else:
                changes.append(_resolve(alert, now, "episode_ended"))
        return changes

    def observe(
        self,
        device_id: str,
        labels: Mapping[str, str],
        profile: str,
        from_status: Status,
        to_status: Status,
        at: float,
    ) -> list[AlertChange]:
        """A committed transition of a device."""
        changes: list[AlertChange] = []
        rules = self._matching(device_id, labels, profile)
        ended_alert = False
        for rule in rules:
            key = (rule.name, device_id)
            statuses = EPISODE_STATUSES.get(rule.kind)
            if statuses is not None:
                episode = self._episodes.get(key)
                if to_status in statuses:
                    if episode is None:
                        self._start(rule, device_id, at)
                elif episode is not None:
                    del self._episodes[key]
                    if episode.alert is not None:
                        changes.append(_resolve(episode.alert, at, f"now {to_status.value}"))
                        ended_alert = True
            elif rule.kind is AlertKind.FLAPPING:
                changes.extend(self._flap(rule, device_id, at))
        if ended_alert:
            for rule in rules:
                if rule.kind is AlertKind.BACK_ONLINE:
                    alert = Alert(
                        alert_key(rule.name, device_id, at),
                        rule.name,
                        rule.kind,
                        device_id,
                        AlertState.RESOLVED,
                        at,
                        at,
                        f"back {to_status.value}",
                    )
                    changes.append(AlertChange(FIRED, alert))
        return changes

    def forget(self, device_id: str, now: float) -> list[AlertChange]:
        """A deleted device: its open alerts resolve."""
        changes = []
        for states in (self._episodes, self._flaps):
            for key in [k for k in states if k[1] == device_id]:
                alert = states.pop(key).alert
                if alert is not None:
                    changes.append(_resolve(alert, now, "device_deleted"))
        return changes

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """When ``advance`` has something to do next (None: nothing scheduled)."""
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def advance(self, now: float) -> list[AlertChange]:
        """Open and resolve whatever is due at ``now``."""
        changes: list[AlertChange] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._live(entry):
                continue
            deadline, _, rule_name, device_id = entry
            key = (rule_name, device_id)
            rule = self.rules[rule_name]
            if rule.kind is AlertKind.FLAPPING:
                flaps = self._flaps.pop(key)
                if flaps.alert is not None:
                    changes.append(_resolve(flaps.alert, deadline, "quiet"))
                continue
            episode = self._episodes[key]
            if episode.alert is None:
                alert = Alert(
                    alert_key(rule_name, device_id, episode.start),
                    rule_name,
                    rule.kind,
                    device_id,
                    AlertState.OPEN,
                    deadline,
                    reason=f"{rule.kind.value} {rule.duration:g}s",
                )
                episode.alert = alert
                changes.append(AlertChange(OPENED, alert))
        return changes

    # ------------------------------------------------------------------ internals

    def _live(self, entry: tuple[float, int, str, str]) -> bool:
        deadline, _, rule_name, device_id = entry
        key = (rule_name, device_id)
        rule = self.rules.get(rule_name)
        if rule is None:
            return False
        if rule.kind is AlertKind.FLAPPING:
            flaps = self._flaps.get(key)
            return flaps is not None and flaps.deadline == deadline
        episode = self._episodes.get(key)
        return episode is not None and episode.alert is None and episode.deadline == deadline

    def _push(self, deadline: float, key: tuple[str, str]) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), *key))

    def _start(self, rule: AlertRule, device_id: str, start: float) -> None:
        episode = _Episode(start, start + rule.duration)
        self._episodes[(rule.name, device_id)] = episode
        self._push(episode.deadline, (rule.name, device_id))

    def _schedule_flaps(self, key: tuple[str, str], flaps: _Flaps, deadline: float) -> None:
        flaps.deadline = deadline
        self._push(deadline, key)

    def _flap(self, rule: AlertRule, device_id: str, at: float) -> Sequence[AlertChange]:
        key = (rule.name, device_id)
        flaps = self._flaps.setdefault(key, _Flaps())
        times = flaps.times
        times.append(at)
        while times and times[0] <= at - rule.window:
            times.popleft()
        # Bounded: only the last count + 1 times can matter.
        while len(times) > rule.count + 1:
            times.popleft()
        if flaps.alert is not None:
            self._schedule_flaps(key, flaps, at + rule.quiet)
            return ()
        if len(times) > rule.count:
            alert = Alert(
                alert_key(rule.name, device_id, times[0]),
                rule.name,
                rule.kind,
                device_id,
                AlertState.OPEN,
                at,
                reason=f"more than {rule.count} transitions in {rule.window:g}s",
            )
            flaps.alert = alert
            self._schedule_flaps(key, flaps, at + rule.quiet)
            return (AlertChange(OPENED, alert),)
        # Not flapping yet: forget the device once its window has emptied.
        self._schedule_flaps(key, flaps, at + rule.window)
        return ()


def _resolve(alert: Alert, at: float, reason: str) -> AlertChange:
    resolved = replace(alert, state=AlertState.RESOLVED, resolved_at=at, reason=reason)
    return AlertChange(RESOLVED, resolved)
