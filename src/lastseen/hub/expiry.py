"""Timeouts on the columns: the sweep's hot loop, without building a state per device.

A device that is ``online`` or ``stale``, not flapping and with an anchor (nearly every
device a sweep meets) can only time out one way: ``online → stale`` at ``anchor +
stale_after`` (or straight to ``offline`` when ``stale_after >= offline_after``), then
``stale → offline`` at ``max(anchor + offline_after, since)``. ``expire_many`` applies those
on the columns of ``DeviceTable`` exactly as the engine's ``advance`` would, re-arms
each device's next deadline, and hands every other case (flapping, or a timeout that
would make the device flap) back to the engine. ``deadline`` is ``next_deadline`` on
the columns. Tests check both against the engine (tests/hub/test_expiry.py).
"""

from __future__ import annotations

from array import array

from lastseen.hub.deadlines import bucket_of
from lastseen.hub.table import (
    NAN,
    ONLINE,
    REASON_CODE,
    REASONS,
    SOURCE_CODE,
    STALE,
    STATUS_CODE,
    STATUSES,
    DeviceTable,
)
from lastseen.presence import Reason, Source, Status, Transition, next_deadline

_OFFLINE = STATUS_CODE[Status.OFFLINE]
_TIMEOUT = SOURCE_CODE[Source.TIMEOUT]
_STALE_TIMEOUT = REASON_CODE[Reason.STALE_TIMEOUT]
_OFFLINE_TIMEOUT = REASON_CODE[Reason.OFFLINE_TIMEOUT]


def deadline(table: DeviceTable, n: int) -> float:
    """When device ``n`` next times out or stops flapping (``next_deadline``); NaN if never."""
    status = table.status[n]
    anchor = table.anchor[n]
    if not table.flapping[n] and status in (ONLINE, STALE):
        if anchor != anchor:
            return NAN
        profile = table.profiles[table.profile[n]]
        if status == STALE:
            return max(anchor + profile.offline_after, table.since[n])
        if profile.stale_after >= profile.offline_after:
            return anchor + profile.offline_after
        return anchor + profile.stale_after
    found = next_deadline(table.state(n), table.profile_of(n))
    return NAN if found is None else found


class Expired:
    """What ``expire_many`` did to one chunk of due devices."""

    __slots__ = ("moves", "owners", "rearm", "slow", "transitions")

    def __init__(self) -> None:
        #: The device number of each transition, and the transitions, in order (one
        #: ``Transition`` object is shared by devices that time out alike, as a
        #: burst does).
        self.owners: list[int] = []
        self.transitions: list[Transition] = []
        #: How many devices moved from one status code to another.
        self.moves: dict[tuple[int, int], int] = {}
        #: Numbers the engine must handle (nothing was written for them).
        self.slow: list[int] = []
        #: Re-armed deadlines by bucket (``scheduled`` already set), for
        #: ``Deadlines.extend``.
        self.rearm: dict[int, array[int]] = {}


def expire_many(table: DeviceTable, due: list[int], now: float) -> Expired:
    """``expire`` and re-arming for the due device numbers of a sweep, in one pass
    over the columns."""
    out = Expired()
    owners = out.owners
    transitions = out.transitions
    moves = out.moves
    slow = out.slow
    rearm = out.rearm
    shared: dict[tuple[int, int, float], Transition] = {}
    status_col = table.status
    flapping_col = table.flapping
    anchor_col = table.anchor
    since_col = table.since
    scheduled = table.scheduled
    profile_col = table.profile
    profiles = table.profiles
    flaps_of = table.flaps
    flap_col = table.flap
    reason_col = table.reason
    source_col = table.source
    last_key = key_ms = -1
    last_deadline = NAN
    last_bucket = array("I")
    for n in due:
        status = status_col[n]
        anchor = anchor_col[n]
        if flapping_col[n] or status not in (ONLINE, STALE) or anchor != anchor:
            slow.append(n)
            continue
        profile = profiles[profile_col[n]]
        offline_after = profile.offline_after
        stale_after = profile.stale_after
        since = since_col[n]
        flaps = flaps_of.get(n)
        if flaps is None:
            flap = flap_col[n]
            flaps = () if flap != flap else (flap,)
        threshold = profile.flap_threshold
        first = len(transitions)
        applied = 0
        flapped = False
        while True:
            if status == STALE:
                at = max(anchor + offline_after, since)
                to, reason = _OFFLINE, _OFFLINE_TIMEOUT
            elif status == ONLINE:
                if stale_after >= offline_after:
                    at = anchor + offline_after
                    to, reason = _OFFLINE, _OFFLINE_TIMEOUT
                else:
                    at = anchor + stale_after
                    to, reason = STALE, _STALE_TIMEOUT
            else:
                break
            if at > now:
                break
            window_start = at - profile.flap_window
            if not flaps:
                flaps = (at,)
            elif len(flaps) == 1:
                # The common case (one earlier transition), without a generator.
                flaps = (at,) if flaps[0] <= window_start else (flaps[0], at)
            else:
                flaps = (*tuple(t for t in flaps if t > window_start)[-threshold:], at)
            if len(flaps) > threshold:
                flapped = True  # it starts flapping: the engine's path
                break
            key = (status, to, at)
            transition = shared.get(key)
            if transition is None:
                transition = shared[key] = Transition(
                    STATUSES[status], STATUSES[to], at, REASONS[reason], Source.TIMEOUT
                )
            transitions.append(transition)
            moves[status, to] = moves.get((status, to), 0) + 1
            status, since, applied = to, at, reason
        if flapped:
            for t in transitions[first:]:
                move = (STATUS_CODE[t.from_status], STATUS_CODE[t.to_status])
                moves[move] -= 1
            del transitions[first:]
            slow.append(n)
            continue
        count = len(transitions) - first
        if count:
            owners += [n] * count
            status_col[n] = status
            since_col[n] = since
            reason_col[n] = applied
            source_col[n] = _TIMEOUT
            if len(flaps) > 1:
                flaps_of[n] = flaps
            else:
                flaps_of.pop(n, None)
            flap_col[n] = flaps[-1]
        # Re-arm: the next timeout of a device that is now stale (an offline one
        # has none).
        if status == STALE:
            deadline_at = max(anchor + offline_after, since)
        elif status == ONLINE:
            deadline_at = anchor + (stale_after if stale_after < offline_after else offline_after)
        else:
            scheduled[n] = NAN
            continue
        scheduled[n] = deadline_at
        if deadline_at != last_deadline:
            # A burst re-arms at one instant: compute its bucket once.
            last_deadline, key_ms = deadline_at, bucket_of(deadline_at)
        if key_ms != last_key:
            # A burst re-arms into one bucket: look it up once, not per device.
            bucket = rearm.get(key_ms)
            if bucket is None:
                bucket = rearm[key_ms] = array("I")
            last_bucket, last_key = bucket, key_ms
        last_bucket.append(n)
    return out
