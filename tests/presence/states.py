"""Named device states shared by the rule tests.

Each one is written out field by field so a table row says exactly where it starts;
``test_named_states_are_reachable`` proves the engine really produces every one of
them, so no rule is tested against a state that cannot happen.
"""

from __future__ import annotations

from lastseen.presence import DeviceState, Profile, Reason, Source, Status

#: The default thresholds of seed 001: stale after 40 s, offline after 300 s.
PROFILE = Profile(stale_after=40.0, offline_after=300.0, flap_threshold=6, flap_window=600.0)

#: When every table row's observation arrives. No named state has a deadline due then.
NOW = 200.0

#: The connection session every named state (but unknown) is in.
SESSION = 5

STATES: dict[str, DeviceState] = {
    # Registered at 0, never seen.
    "unknown": DeviceState(status=Status.UNKNOWN, since=0.0),
    # Connected (session 5) at 190: its own sign is 10 s old.
    "online": DeviceState(
        status=Status.ONLINE,
        since=190.0,
        last_seen=190.0,
        last_own=190.0,
        anchor=190.0,
        reason=Reason.CONNECTED,
        source=Source.CONNECT,
        session=SESSION,
        flaps=(190.0,),
    ),
    # Connected at 100, stale at 140, revived by a probe at 190: online, but its own
    # sign is 100 s old.
    "online-by-probe": DeviceState(
        status=Status.ONLINE,
        since=190.0,
        last_seen=190.0,
        last_own=100.0,
        anchor=190.0,
        reason=Reason.PROBE_OK,
        source=Source.PROBE,
        session=SESSION,
        flaps=(100.0, 140.0, 190.0),
    ),
    # Connected at 100, stale by timeout at 140 (offline due at 400).
    "stale": DeviceState(
        status=Status.STALE,
        since=140.0,
        last_seen=100.0,
        last_own=100.0,
        anchor=100.0,
        reason=Reason.STALE_TIMEOUT,
        source=Source.TIMEOUT,
        session=SESSION,
        flaps=(100.0, 140.0),
    ),
    # Connected at 190, set stale by hand at 195: stale, but its own sign is fresh.
    "stale-by-hand": DeviceState(
        status=Status.STALE,
        since=195.0,
        last_seen=190.0,
        last_own=190.0,
        anchor=190.0,
        reason=Reason.MANUAL,
        source=Source.MANUAL,
        session=SESSION,
        flaps=(190.0, 195.0),
    ),
    # Connected at 100, cleanly disconnected at 130.
    "offline": DeviceState(
        status=Status.OFFLINE,
        since=130.0,
        last_seen=100.0,
        last_own=100.0,
        anchor=100.0,
        reason=Reason.DISCONNECTED,
        source=Source.DISCONNECT,
        session=SESSION,
        flaps=(100.0, 130.0),
    ),
}
