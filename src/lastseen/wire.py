"""The JSON shapes lastseen speaks: devices and events, as documented in docs/api.md."""

from __future__ import annotations

from typing import Any

from lastseen.presence import DeviceState, Profile, Transition, next_deadline
from lastseen.store import DeviceRecord, EventRecord
from lastseen.timefmt import rfc3339, rfc3339_or_none


def compact(raw: bytes) -> bytes:
    """A right-sized copy of orjson output, for bytes that are kept around.

    orjson (3.13) returns its result in a 4 KiB allocation whatever the length, so
    a 160-byte event held in the replay ring or a subscriber queue would pin 4 KiB
    (measured with tracemalloc: 4 098 bytes per ``dumps`` result, 217 after a copy).
    """
    return bytes(memoryview(raw))


def event_json(seq: int, device_id: str, transition: Transition) -> dict[str, Any]:
    return {
        "type": "transition",
        "seq": seq,
        "device_id": device_id,
        "from": transition.from_status.value,
        "to": transition.to_status.value,
        "at": rfc3339(transition.at),
        "reason": transition.reason.value,
        "source": transition.source.value,
        "flapping": transition.flapping,
    }


def event_record_json(event: EventRecord) -> dict[str, Any]:
    return event_json(event.seq, event.device_id, event.transition)


def presence_json(state: DeviceState) -> dict[str, Any]:
    return {
        "status": state.status.value,
        "status_since": rfc3339(state.since),
        "last_seen": rfc3339_or_none(state.last_seen),
        "reason": None if state.reason is None else state.reason.value,
        "source": None if state.source is None else state.source.value,
        "flapping": state.flapping,
        "session": state.session,
    }


def device_json(record: DeviceRecord, profile: Profile) -> dict[str, Any]:
    state = record.state
    return {
        "id": record.id,
        **presence_json(state),
        "profile": record.profile,
        "labels": dict(record.labels),
        "attributes": dict(record.attributes),
        "metrics": dict(record.metrics),
        "created_at": rfc3339(record.created_at),
        "next_deadline": rfc3339_or_none(next_deadline(state, profile)),
    }
