"""Between Redis's strings and lastseen's values (states, records, events)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from lastseen.presence import DeviceState, Profile, Reason, Source, Status, Transition
from lastseen.store import DeviceRecord, EventRecord


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _num(value: str) -> float | None:
    return float(value) if value else None


def _flaps(value: str) -> tuple[float, ...]:
    return tuple(float(t) for t in value.split(",")) if value else ()


def profile_spec(profile: Profile) -> str:
    """How a script receives a profile: ``name|stale|offline|flap_threshold|flap_window``;
    ``repr`` of a float round-trips exactly."""
    return (
        f"{profile.name}|{profile.stale_after!r}|{profile.offline_after!r}|"
        f"{profile.flap_threshold}|{profile.flap_window!r}"
    )


def state_from_reply(reply: Sequence[bytes | str]) -> tuple[DeviceState, str, int | None]:
    """A script's ``ok`` reply: the state, the profile name, the last seq it assigned."""
    r = [text(v) for v in reply]
    state = DeviceState(
        status=Status(r[1]),
        since=float(r[2]),
        last_seen=_num(r[3]),
        last_own=_num(r[4]),
        anchor=_num(r[5]),
        reason=Reason(r[6]) if r[6] else None,
        source=Source(r[7]) if r[7] else None,
        session=int(float(r[8])) if r[8] else None,
        flaps=_flaps(r[9]),
        flapping=r[10] == "1",
    )
    return state, r[11], int(r[12]) if r[12] else None


def state_from_hash(h: Mapping[str, str]) -> DeviceState:
    return DeviceState(
        status=Status(h["st"]),
        since=float(h["si"]),
        last_seen=_num(h.get("ls", "")),
        last_own=_num(h.get("lo", "")),
        anchor=_num(h.get("an", "")),
        reason=Reason(h["rs"]) if h.get("rs") else None,
        source=Source(h["so"]) if h.get("so") else None,
        session=int(float(h["se"])) if h.get("se") else None,
        flaps=_flaps(h.get("fl", "")),
        flapping=h.get("fp") == "1",
    )


def decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def record_from_hash(
    device_id: str, h: Mapping[str, str], attributes: Mapping[Any, Any]
) -> DeviceRecord:
    return DeviceRecord(
        id=device_id,
        profile=h.get("pn", "default"),
        state=state_from_hash(h),
        labels=orjson.loads(h.get("lb", "{}")),
        attributes={text(k): orjson.loads(v) for k, v in attributes.items()},
        metrics=orjson.loads(h.get("mt", "{}")),
        created_at=float(h.get("ca", "0")),
        updated_at=float(h.get("ua", "0")),
    )


def seq_of(entry_id: bytes | str) -> int:
    """The seq of a stream entry id ``<seq>-0``."""
    return int(text(entry_id).split("-", 1)[0])


def event_from_entry(
    entry_id: bytes | str, fields: Mapping[Any, Any]
) -> tuple[EventRecord, dict[str, str]]:
    """A stream entry as an event, and the device's labels when it was appended."""
    f = {text(k): text(v) for k, v in fields.items()}
    transition = Transition(
        from_status=Status(f["f"]),
        to_status=Status(f["t"]),
        at=float(f["a"]),
        reason=Reason(f["r"]),
        source=Source(f["s"]),
        flapping=f.get("fp") == "1",
    )
    labels: dict[str, str] = orjson.loads(f.get("l", "{}"))
    return EventRecord(seq_of(entry_id), f["d"], transition), labels


def hash_fields(record: DeviceRecord, profile: Profile) -> list[str]:
    """A stored device as the fields of its Redis hash (the inverse of
    ``record_from_hash``)."""
    s = record.state
    fields = {
        "st": s.status.value,
        "si": repr(s.since),
        "fl": ",".join(repr(t) for t in s.flaps),
        "fp": "1" if s.flapping else "0",
        "pn": profile.name,
        "sa": repr(profile.stale_after),
        "oa": repr(profile.offline_after),
        "ft": str(profile.flap_threshold),
        "fw": repr(profile.flap_window),
        "lb": orjson.dumps(dict(record.labels)).decode(),
        "mt": orjson.dumps(dict(record.metrics)).decode(),
        "ca": repr(record.created_at),
        "ua": repr(record.updated_at),
    }
    optional = {
        "ls": s.last_seen,
        "lo": s.last_own,
        "an": s.anchor,
        "rs": s.reason.value if s.reason else None,
        "so": s.source.value if s.source else None,
        "se": s.session,
    }
    for key, value in optional.items():
        if value is not None:
            fields[key] = value if isinstance(value, str) else repr(value)
    return [item for pair in fields.items() for item in pair]
