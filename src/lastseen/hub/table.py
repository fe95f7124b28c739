"""The embedded hub's hot state in columns: one compact array per field, one row per device.

Theory of operation
-------------------
A million devices held as Python objects cost about 550 bytes each (an ``Entry``, a
``DeviceState``, a flaps tuple, a heap tuple, their floats; BENCHMARKS.md § 5), and
every sweep or restart touched each of those objects. Here a device is a *number*:
its id is interned once in ``index`` (id → number), and each field lives in an
``array`` at that number, so a device costs its id string, its dict slot and about
70 bytes of columns. Fields that are empty for nearly every device (labels,
attributes, metrics, the connection session, more than one recent flap) live in
side dicts holding only the devices that have one.

``None`` is stored as NaN in float columns and as -1 in code columns. Profiles,
statuses, reasons and sources are small integers indexing a tuple. A deleted
device's number goes on a free list and is reused by the next new device, so the
columns never grow past the largest fleet the hub has held.

The pure engine still decides everything: ``state(n)`` builds the engine's
``DeviceState`` for one device on demand, ``set_state`` stores one back. The hub's
two hot loops, the heartbeat of an online device and the sweep of expired deadlines,
work on the columns directly (``refresh``, ``hub/expiry.py``); tests check they give
exactly the engine's answer. Everything here runs on the event loop only.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from itertools import compress, count, repeat
from operator import is_not, itemgetter
from types import MappingProxyType
from typing import Any, Final

import orjson

from lastseen.presence import DeviceState, Profile, Reason, Source, Status
from lastseen.store import PresenceColumns

NAN: Final = float("nan")

#: One device's presence columns (``DeviceTable.presence``): status code, since,
#: last_seen, last_own, anchor, reason code, source code, session, flaps (when more
#: than one), flap, flapping.
Presence = tuple[
    int, float, float, float, float, int, int, "int | None", "tuple[float, ...] | None", float, int
]
EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
STATUSES: Final = tuple(Status)
REASONS: Final = tuple(Reason)
SOURCES: Final = tuple(Source)
STATUS_CODE: Final = {s: i for i, s in enumerate(STATUSES)}
REASON_CODE: Final = {r: i for i, r in enumerate(REASONS)}
SOURCE_CODE: Final = {s: i for i, s in enumerate(SOURCES)}
ONLINE: Final = STATUS_CODE[Status.ONLINE]
STALE: Final = STATUS_CODE[Status.STALE]


def _float(value: float | None) -> float:
    return NAN if value is None else value


def _floats(values: Iterator[float | None]) -> list[float]:
    return [NAN if v is None else v for v in values]


_NANS: Final = array("d", [NAN])


def _present(rows: Sequence[Sequence[Any]], column: int, base: int) -> Iterator[int]:
    """The device numbers (``base`` + position) of the rows whose ``column`` is not None."""
    return compress(count(base), map(is_not, map(itemgetter(column), rows), repeat(None)))


def _json(value: Any) -> Any:
    """A stored JSON column: text or bytes to decode, or a value already decoded."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


class DeviceTable:
    """Every device's hot state, in columns indexed by a device number."""

    __slots__ = (
        "anchor",
        "attributes",
        "created_at",
        "flap",
        "flapping",
        "flaps",
        "free",
        "ids",
        "index",
        "labels",
        "last_own",
        "last_seen",
        "metrics",
        "profile",
        "profile_index",
        "profiles",
        "reason",
        "scheduled",
        "sessions",
        "since",
        "source",
        "status",
        "updated_at",
    )

    def __init__(self) -> None:
        #: id → device number; ``ids`` is the reverse (None for a free number).
        self.index: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.free: list[int] = []
        self.status = array("b")
        self.since = array("d")
        self.last_seen = array("d")
        self.last_own = array("d")
        self.anchor = array("d")
        self.reason = array("b")
        self.source = array("b")
        self.flapping = bytearray()
        #: The newest flap time (NaN if none); ``flaps`` holds the full tuple only
        #: for devices with two or more recent flaps.
        self.flap = array("d")
        self.flaps: dict[int, tuple[float, ...]] = {}
        self.sessions: dict[int, int] = {}
        #: The deadline of the device's live entry in ``Deadlines`` (NaN if none).
        self.scheduled = array("d")
        self.created_at = array("d")
        self.updated_at = array("d")
        self.profile = array("H")
        self.profiles: list[Profile] = []
        self.profile_index: dict[Profile, int] = {}
        self.labels: dict[int, Mapping[str, str]] = {}
        self.attributes: dict[int, Mapping[str, Any]] = {}
        self.metrics: dict[int, Mapping[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def load(self, rows: Sequence[Sequence[Any]], profile_of: Callable[[str], Profile]) -> None:
        """Append stored device rows (a batch of ``Store.device_rows``) as new devices.

        Each column is filled in one pass in C over the batch (``array.extend`` of a
        ``map``); only the few devices with labels, attributes, metrics, a session or
        flaps cost Python work, found with ``compress``. No record or state object is
        built per device. Only for a table being loaded: one with no free numbers.
        """
        if self.free:
            raise RuntimeError("load() needs a table without free numbers")
        base = len(self.ids)
        size = len(rows)
        ids = list(map(itemgetter(0), rows))
        index = self.index
        index.update(zip(ids, range(base, base + size), strict=True))
        self.ids += ids
        if len(index) != len(self.ids):
            raise ValueError("stored device rows repeat a device id")
        names = set(map(itemgetter(1), rows))
        codes = {name: self.profile_code(profile_of(name)) for name in names}
        self.profile.extend(map(codes.__getitem__, map(itemgetter(1), rows)))
        for column, side in ((2, self.labels), (3, self.attributes), (4, self.metrics)):
            for n in _present(rows, column, base):
                if decoded := _json(rows[n - base][column]):
                    side[n] = decoded
        self.status.extend(map(itemgetter(5), rows))
        self.since.extend(map(itemgetter(6), rows))
        self.last_seen.extend(_floats(map(itemgetter(7), rows)))
        self.last_own.extend(_floats(map(itemgetter(8), rows)))
        self.anchor.extend(_floats(map(itemgetter(9), rows)))
        self.reason.extend(map(itemgetter(10), rows))
        self.source.extend(map(itemgetter(11), rows))
        sessions = self.sessions
        for n in _present(rows, 12, base):
            sessions[n] = rows[n - base][12]
        # The newest flap: the only one (column 14), or the last of two or more (13).
        flap = self.flap
        flap.extend([NAN if v is None else float(v) for v in map(itemgetter(14), rows)])
        flaps = self.flaps
        for n in _present(rows, 13, base):
            times = tuple(_json(rows[n - base][13]))
            flaps[n] = times
            flap[n] = times[-1]
        self.flapping.extend(map(itemgetter(15), rows))
        self.created_at.extend(map(itemgetter(16), rows))
        self.updated_at.extend(map(itemgetter(17), rows))
        self.scheduled.extend(_NANS * size)

    def with_status(self, codes: Collection[int]) -> list[int]:
        """The numbers of the devices whose status code is one of ``codes``, in number
        order: one pass in C over the status column, then only the matches."""
        if not codes:
            return []
        wanted = bytes(1 if code in codes else 0 for code in range(256))
        ids = self.ids
        matches = compress(count(), self.status.tobytes().translate(wanted))
        # Free numbers keep their last status; they are not devices.
        return [n for n in matches if ids[n] is not None]

    def status_histogram(self) -> list[int]:
        """How many devices have each status, in ``STATUSES`` order."""
        data = self.status.tobytes()
        counts = [data.count(code) for code in range(len(STATUSES))]
        # Free numbers keep their last status; take them back out.
        for n in self.free:
            counts[self.status[n]] -= 1
        return counts

    # ------------------------------------------------------------------ rows

    def profile_code(self, profile: Profile) -> int:
        code = self.profile_index.get(profile)
        if code is None:
            code = self.profile_index[profile] = len(self.profiles)
            self.profiles.append(profile)
        return code

    def add(
        self,
        device_id: str,
        state: DeviceState,
        profile: Profile,
        created_at: float,
        updated_at: float,
    ) -> int:
        """A new row for ``device_id`` (not yet present); returns its number."""
        code = self.profile_code(profile)
        free = self.free
        if free:
            n = free.pop()
            self.ids[n] = device_id
            self.profile[n] = code
            self.created_at[n] = created_at
            self.updated_at[n] = updated_at
            self.scheduled[n] = NAN
        else:
            n = len(self.ids)
            self.ids.append(device_id)
            self.status.append(0)
            self.since.append(0.0)
            self.last_seen.append(NAN)
            self.last_own.append(NAN)
            self.anchor.append(NAN)
            self.reason.append(-1)
            self.source.append(-1)
            self.flapping.append(0)
            self.flap.append(NAN)
            self.scheduled.append(NAN)
            self.created_at.append(created_at)
            self.updated_at.append(updated_at)
            self.profile.append(code)
        self.index[device_id] = n
        self.set_state(n, state)
        return n

    def remove(self, device_id: str) -> int | None:
        """Drop ``device_id``'s row; its number is free for the next new device."""
        n = self.index.pop(device_id, None)
        if n is None:
            return None
        self.ids[n] = None
        self.scheduled[n] = NAN
        for side in (self.flaps, self.sessions, self.labels, self.attributes, self.metrics):
            side.pop(n, None)
        self.free.append(n)
        return n

    def state(self, n: int) -> DeviceState:
        """Device ``n``'s presence as the engine's value."""
        return state_from(self.presence(n))

    def presence(self, n: int) -> Presence:
        """Device ``n``'s presence columns as they are now: a tuple, far cheaper to take
        than the ``DeviceState`` that ``state_from`` builds from it later."""
        return (
            self.status[n],
            self.since[n],
            self.last_seen[n],
            self.last_own[n],
            self.anchor[n],
            self.reason[n],
            self.source[n],
            self.sessions.get(n),
            self.flaps.get(n),
            self.flap[n],
            self.flapping[n],
        )

    def presence_columns(self, ids: list[str], numbers: list[int]) -> PresenceColumns:
        """The presence of devices ``numbers`` (whose ids are ``ids``) for the store, a
        column at a time: no ``DeviceState`` per device (``state`` costs 5-8x
        ``presence``)."""
        flaps_of = self.flaps
        flap = self.flap
        return PresenceColumns(
            ids=ids,
            status=[STATUSES[code] for code in map(self.status.__getitem__, numbers)],
            since=list(map(self.since.__getitem__, numbers)),
            last_seen=_nones(map(self.last_seen.__getitem__, numbers)),
            last_own=_nones(map(self.last_own.__getitem__, numbers)),
            anchor=_nones(map(self.anchor.__getitem__, numbers)),
            reason=[None if c < 0 else REASONS[c] for c in map(self.reason.__getitem__, numbers)],
            source=[None if c < 0 else SOURCES[c] for c in map(self.source.__getitem__, numbers)],
            session=list(map(self.sessions.get, numbers)),
            flaps=[flaps_of.get(n) or (() if (f := flap[n]) != f else (f,)) for n in numbers],
            flapping=[bool(f) for f in map(self.flapping.__getitem__, numbers)],
        )

    def set_state(self, n: int, state: DeviceState) -> None:
        self.status[n] = STATUS_CODE[state.status]
        self.since[n] = state.since
        self.last_seen[n] = _float(state.last_seen)
        self.last_own[n] = _float(state.last_own)
        self.anchor[n] = _float(state.anchor)
        self.reason[n] = -1 if state.reason is None else REASON_CODE[state.reason]
        self.source[n] = -1 if state.source is None else SOURCE_CODE[state.source]
        self.flapping[n] = state.flapping
        self.set_flaps(n, state.flaps)
        if state.session is None:
            self.sessions.pop(n, None)
        else:
            self.sessions[n] = state.session

    def set_flaps(self, n: int, flaps: tuple[float, ...]) -> None:
        if len(flaps) > 1:
            self.flaps[n] = flaps
        else:
            self.flaps.pop(n, None)
        self.flap[n] = flaps[-1] if flaps else NAN

    def profile_of(self, n: int) -> Profile:
        return self.profiles[self.profile[n]]

    def set_side(
        self, side: dict[int, Mapping[str, Any]], n: int, value: Mapping[str, Any]
    ) -> None:
        """Store a labels/attributes/metrics mapping; an empty one is not kept."""
        if value:
            side[n] = value
        else:
            side.pop(n, None)

    def refresh(self, n: int, now: float) -> bool:
        """The heartbeat hot path: an online, non-flapping device whose live deadline
        has not come only moves its three times. False when the engine's general path
        must decide.

        The engine's answer is known in that case (``observe`` would apply no deadline
        and make no transition, nothing durable changes), so the columns are set
        directly; tests/hub/test_refresh.py checks that it is the engine's answer. The
        deadlines need nothing either: the live entry (``scheduled``, never later than
        the old deadline, which is never later than the new one) fires first and
        re-arms."""
        scheduled = self.scheduled[n]
        anchor = self.anchor[n]
        # NaN compares false both ways, so "not scheduled" and "no anchor" fail here.
        if not (
            self.status[n] == ONLINE and not self.flapping[n] and scheduled > now and anchor <= now
        ):
            return False
        self.last_seen[n] = now
        self.last_own[n] = now
        self.anchor[n] = now
        return True


def _nones(values: Iterator[float]) -> list[float | None]:
    """NaN (no time) as None."""
    return [None if v != v else v for v in values]


def state_from(presence: Presence) -> DeviceState:
    """The engine's value of a ``DeviceTable.presence`` tuple (NaN and -1 are None)."""
    (status, since, last_seen, last_own, anchor, reason, source, session, flaps, flap,
     flapping) = presence  # fmt: skip
    if flaps is None:
        flaps = () if flap != flap else (flap,)
    return DeviceState(
        status=STATUSES[status],
        since=since,
        last_seen=None if last_seen != last_seen else last_seen,
        last_own=None if last_own != last_own else last_own,
        anchor=None if anchor != anchor else anchor,
        reason=None if reason < 0 else REASONS[reason],
        source=None if source < 0 else SOURCES[source],
        session=session,
        flaps=flaps,
        flapping=bool(flapping),
    )


class Row:
    """One device's row, read on access: what ``Entry`` used to be, read-only.

    A row read after its device was deleted raises ``LookupError`` (its number may
    already belong to another device).
    """

    __slots__ = ("_id", "_n", "_table")

    def __init__(self, table: DeviceTable, n: int, device_id: str) -> None:
        # The table's own id object: ``_live`` compares identities, not strings.
        self._table = table
        self._n = n
        self._id = device_id

    def _live(self) -> int:
        if self._table.ids[self._n] is not self._id:
            raise LookupError(f"device {self._id!r} was deleted")
        return self._n

    @property
    def state(self) -> DeviceState:
        return self._table.state(self._live())

    @property
    def profile(self) -> Profile:
        return self._table.profile_of(self._live())

    @property
    def labels(self) -> Mapping[str, str]:
        return self._table.labels.get(self._live(), EMPTY)

    @property
    def attributes(self) -> Mapping[str, Any]:
        return self._table.attributes.get(self._live(), EMPTY)

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self._table.metrics.get(self._live(), EMPTY)

    @property
    def created_at(self) -> float:
        return self._table.created_at[self._live()]

    @property
    def updated_at(self) -> float:
        return self._table.updated_at[self._live()]

    @property
    def scheduled(self) -> float | None:
        value = self._table.scheduled[self._live()]
        return None if value != value else value


class Entries(Mapping[str, Row]):
    """``Hub.entries``: a read-only mapping of device id → ``Row`` over the table."""

    __slots__ = ("_table",)

    def __init__(self, table: DeviceTable) -> None:
        self._table = table

    def __getitem__(self, device_id: str) -> Row:
        table = self._table
        n = table.index[device_id]
        return Row(table, n, table.ids[n])  # type: ignore[arg-type]

    def get(self, device_id: str, default: Any = None) -> Any:
        table = self._table
        n = table.index.get(device_id)
        return default if n is None else Row(table, n, table.ids[n])  # type: ignore[arg-type]

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._table.index

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.index)

    def __len__(self) -> int:
        return len(self._table.index)
