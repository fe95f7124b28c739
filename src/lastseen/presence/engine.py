"""The presence engine: pure functions from (state, observation, now) to (state, transitions).

Theory of operation
-------------------
Every device is a small state machine. Nothing in here reads a clock, sleeps, or
touches storage: the I/O shell passes ``now`` in and persists what comes out. That
is what makes the rules testable to the millisecond and identical on every backend.

Time only matters through *deadlines*. A device that is ``online`` becomes ``stale``
at ``anchor + stale_after`` and ``offline`` at ``anchor + offline_after``, where the
anchor is the last sign of life. ``next_deadline()`` tells the shell when to call
``advance()`` next, so a shell can sleep exactly until something can happen instead
of scanning on a cron (seed 001 ran its timeouts once a minute). A timeout transition
is stamped with its deadline, never with the moment the shell noticed it, so a late
sweep or a restart still records the truth.

``observe()`` first applies every deadline that is already due, then the observation.
The shell therefore cannot get the order wrong: a heartbeat arriving long after a
device should have gone stale first records the timeout, then the recovery.

Authority decides who may change what (see ``docs/presence-model.md``):

* The device's own word (heartbeat, telemetry, connect) always makes it online at
  once. A late outside probe can never overwrite it (seed 001's ping service did).
* A disconnect (clean close or last will) of the *current* connection session makes
  the device offline at once. One that belongs to an *older* session is ignored: real
  brokers deliver a will after the reconnect's birth message (Sparkplug's bdSeq and
  AWS IoT's session identifiers exist for exactly this). Likewise a connect of an
  older session, or of the session whose disconnect was the last word, is ignored.
* A probe failure only degrades a device whose last own sign is older than its
  ``stale_after``; one level per failure (online to stale, stale to offline).
* A probe success is a sign of life, weaker than the device's own word: it revives
  the device and re-arms its deadlines, but never makes a newer probe failure moot
  by itself, and never counts as the device's own sign.

Flapping: a device that changed status more than ``flap_threshold`` times within
``flap_window`` seconds is marked flapping until it has been stable for
``flap_window``. The flag never suppresses a transition; it lets consumers stay quiet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lastseen.presence.profile import Profile
from lastseen.presence.status import OWN_SOURCES, Reason, Source, Status


@dataclass(frozen=True, slots=True)
class Observation:
    """A sign of life or of death, as the shell received it.

    ``session`` is the connection session number for ``connect``/``disconnect``
    (None means "the current session"). ``status`` is the target of a ``manual``
    observation. ``ok`` is the outcome of a ``probe``.
    """

    source: Source
    session: int | None = None
    status: Status | None = None
    ok: bool = True


@dataclass(frozen=True, slots=True)
class Transition:
    """One status change. The shell adds the device id and the fleet-wide seq."""

    from_status: Status
    to_status: Status
    at: float
    reason: Reason
    source: Source
    flapping: bool = False


@dataclass(frozen=True, slots=True)
class DeviceState:
    """Everything the rules need to know about one device.

    ``last_seen`` is the last sign of life of any source, ``last_own`` the last one
    from the device itself (probe authority), ``anchor`` the time deadlines count
    from. ``flaps`` holds the times of recent transitions (at most
    ``flap_threshold + 1`` of them) and ``last_change`` the time of the newest one.
    """

    status: Status = Status.UNKNOWN
    since: float = 0.0
    last_seen: float | None = None
    last_own: float | None = None
    anchor: float | None = None
    reason: Reason | None = None
    source: Source | None = None
    session: int | None = None
    flaps: tuple[float, ...] = ()
    flapping: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """The result of applying time or an observation to a device.

    ``changed`` is true when anything worth persisting moved besides the
    ``last_seen``/``last_own``/``anchor`` times (a transition, a session, the
    flapping flag).
    """

    state: DeviceState
    transitions: tuple[Transition, ...] = ()
    changed: bool = False


def new_device(now: float) -> DeviceState:
    """A registered device that has never been seen."""
    return DeviceState(status=Status.UNKNOWN, since=now)


def _status_deadline(state: DeviceState, profile: Profile) -> tuple[float, Status, Reason] | None:
    if state.anchor is None:
        return None
    if state.status is Status.ONLINE:
        if profile.stale_after >= profile.offline_after:
            return (state.anchor + profile.offline_after, Status.OFFLINE, Reason.OFFLINE_TIMEOUT)
        return (state.anchor + profile.stale_after, Status.STALE, Reason.STALE_TIMEOUT)
    if state.status is Status.STALE:
        # Set stale by hand, the device may already be past offline_after; never
        # stamp a transition earlier than the status it leaves.
        deadline = max(state.anchor + profile.offline_after, state.since)
        return (deadline, Status.OFFLINE, Reason.OFFLINE_TIMEOUT)
    return None


def _flap_deadline(state: DeviceState, profile: Profile) -> float | None:
    if not state.flapping:
        return None
    return state.flaps[-1] + profile.flap_window


def next_deadline(state: DeviceState, profile: Profile) -> float | None:
    """When ``advance`` will next change something for this device, or None if never
    (until an observation arrives)."""
    status = _status_deadline(state, profile)
    flap = _flap_deadline(state, profile)
    if status is None:
        return flap
    if flap is None:
        return status[0]
    return min(status[0], flap)


def _transition(
    state: DeviceState,
    to: Status,
    at: float,
    reason: Reason,
    source: Source,
    profile: Profile,
) -> tuple[DeviceState, Transition]:
    # Keep only the transitions inside the window that ends now, plus this one.
    window_start = at - profile.flap_window
    recent = tuple(t for t in state.flaps if t > window_start)[-profile.flap_threshold :]
    flaps = (*recent, at)
    flapping = state.flapping or len(flaps) > profile.flap_threshold
    # Built directly rather than with dataclasses.replace: this runs once per
    # transition (100 000 times in a burst of timeouts) and replace is 4x slower.
    new = DeviceState(
        status=to,
        since=at,
        last_seen=state.last_seen,
        last_own=state.last_own,
        anchor=state.anchor,
        reason=reason,
        source=source,
        session=state.session,
        flaps=flaps,
        flapping=flapping,
    )
    return new, Transition(state.status, to, at, reason, source, flapping)


def advance(state: DeviceState, profile: Profile, now: float) -> Step:
    """Apply every deadline that is due at ``now``, each stamped with its deadline."""
    transitions: list[Transition] = []
    changed = False
    while True:
        due = _status_deadline(state, profile)
        flap = _flap_deadline(state, profile)
        if flap is not None and flap <= now and (due is None or flap <= due[0]):
            state = replace(state, flapping=False)
            changed = True
            continue
        if due is None or due[0] > now:
            break
        deadline, to, reason = due
        state, transition = _transition(state, to, deadline, reason, Source.TIMEOUT, profile)
        transitions.append(transition)
        changed = True
    return Step(state, tuple(transitions), changed)


_OWN_REASONS = {
    Source.HEARTBEAT: Reason.HEARTBEAT,
    Source.TELEMETRY: Reason.TELEMETRY,
    Source.CONNECT: Reason.CONNECTED,
}


def check_observation(observation: Observation) -> None:
    """Refuse an observation no device could take (a manual one without a target
    status): shells call this before touching anything, the engine again."""
    if observation.source is Source.MANUAL and observation.status in (None, Status.UNKNOWN):
        raise ValueError("a manual observation needs a target status other than unknown")


def observe(state: DeviceState, observation: Observation, profile: Profile, now: float) -> Step:
    """Apply due deadlines, then ``observation`` received at ``now``."""
    step = advance(state, profile, now)
    state = step.state
    transitions = list(step.transitions)
    changed = step.changed
    source = observation.source
    to: Status | None = None
    reason: Reason | None = None

    if source in OWN_SOURCES:
        session = state.session
        if source is Source.CONNECT and observation.session is not None:
            if session is not None and (
                observation.session < session
                or (observation.session == session and state.source is Source.DISCONNECT)
            ):
                # A connect of an older session delivered late: the newer one stands.
                # One of the session whose disconnect we already applied is a late or
                # duplicate birth of a dead connection (brokers order per topic only).
                return Step(state, tuple(transitions), changed)
            changed = changed or observation.session != session
            session = observation.session
        # The hot path (every heartbeat): built directly, not with replace().
        state = DeviceState(
            status=state.status,
            since=state.since,
            last_seen=now,
            last_own=now,
            anchor=now,
            reason=state.reason,
            source=state.source,
            session=session,
            flaps=state.flaps,
            flapping=state.flapping,
        )
        to, reason = Status.ONLINE, _OWN_REASONS[source]
    elif source is Source.DISCONNECT:
        current, session = state.session, observation.session
        if session is not None and current is not None and session < current:
            # A last will of an older session arriving after a reconnect: ignore it.
            return Step(state, tuple(transitions), changed)
        if session is not None and session != current:
            state = replace(state, session=session)
            changed = True
        to, reason = Status.OFFLINE, Reason.DISCONNECTED
    elif source is Source.PROBE:
        if observation.ok:
            state = replace(state, last_seen=now, anchor=now)
            to, reason = Status.ONLINE, Reason.PROBE_OK
        elif state.last_own is None or now - state.last_own >= profile.stale_after:
            to, reason = _PROBE_DEGRADE.get(state.status), Reason.PROBE_FAILED
    elif source is Source.MANUAL:
        check_observation(observation)
        to, reason = observation.status, Reason.MANUAL
        if to is Status.ONLINE:
            state = replace(state, anchor=now)
    else:
        raise ValueError(f"{source} is not an observation source")

    if to is not None and reason is not None and to is not state.status:
        state, transition = _transition(state, to, now, reason, source, profile)
        transitions.append(transition)
        changed = True
    return Step(state, tuple(transitions), changed)


#: One level down per failed probe; an offline device stays offline.
_PROBE_DEGRADE = {
    Status.UNKNOWN: Status.OFFLINE,
    Status.ONLINE: Status.STALE,
    Status.STALE: Status.OFFLINE,
}
