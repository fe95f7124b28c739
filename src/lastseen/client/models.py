"""The values the hub client returns, parsed from the hub's JSON (see docs/api.md).

Parsing is strict about what the client relies on (ids, statuses, seq numbers,
times) and lenient about the rest, so a hub that adds a field does not break old
clients. Each value keeps the JSON it came from in ``raw`` (for ``--json`` output and
for fields this version does not know yet). A malformed answer raises ``HubError``
with the code ``bad_response``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lastseen.client.errors import HubError

JSONObject = dict[str, Any]


def _bad(what: str, data: object) -> HubError:
    return HubError(None, "bad_response", f"unexpected answer from the hub: {what}: {data!r:.200}")


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise _bad(f"{key!r} is not a string", data)
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"{key!r} is not a string", data)
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"{key!r} is not an integer", data)
    return value


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    return None if data.get(key) is None else _int(data, key)


def _opt_float(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _bad(f"{key!r} is not a number", data)
    return float(value)


def _opt_time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = _opt_str(data, key)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(f"{key!r} is not an RFC 3339 time", data) from None
    if parsed.tzinfo is None:
        raise _bad(f"{key!r} has no time zone", data)
    return parsed


def _time(data: Mapping[str, Any], key: str) -> datetime:
    parsed = _opt_time(data, key)
    if parsed is None:
        raise _bad(f"{key!r} is missing", data)
    return parsed


def _object(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{key!r} is not an object", data)
    return value


def as_object(data: object, what: str = "answer") -> JSONObject:
    """``data`` if it is a JSON object, else a ``bad_response`` error."""
    if not isinstance(data, dict):
        raise _bad(f"the {what} is not a JSON object", data)
    return data


def _objects(data: Mapping[str, Any], key: str) -> list[JSONObject]:
    value = data.get(key)
    if not isinstance(value, list):
        raise _bad(f"{key!r} is not a list", data)
    return [as_object(item, f"item of {key!r}") for item in value]


@dataclass(frozen=True, slots=True)
class Device:
    """A device and its presence, as ``GET /v1/devices/{id}`` returns it."""

    id: str
    status: str
    status_since: datetime | None
    last_seen: datetime | None
    reason: str | None
    source: str | None
    profile: str | None
    labels: Mapping[str, str]
    attributes: Mapping[str, Any]
    metrics: Mapping[str, Any]
    flapping: bool
    next_deadline: datetime | None
    created_at: datetime | None
    raw: JSONObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: object) -> Device:
        obj = as_object(data, "device")
        labels = _object(obj, "labels")
        if not all(isinstance(value, str) for value in labels.values()):
            raise _bad("a label value is not a string", obj)
        return cls(
            id=_str(obj, "id"),
            status=_str(obj, "status"),
            status_since=_opt_time(obj, "status_since"),
            last_seen=_opt_time(obj, "last_seen"),
            reason=_opt_str(obj, "reason"),
            source=_opt_str(obj, "source"),
            profile=_opt_str(obj, "profile"),
            labels=labels,
            attributes=_object(obj, "attributes"),
            metrics=_object(obj, "metrics"),
            flapping=obj.get("flapping") is True,
            next_deadline=_opt_time(obj, "next_deadline"),
            created_at=_opt_time(obj, "created_at"),
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """One status change of one device, with its fleet-wide ``seq``."""

    seq: int
    device_id: str
    from_status: str
    to_status: str
    at: datetime
    reason: str | None
    source: str | None
    flapping: bool
    raw: JSONObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: object) -> Transition:
        obj = as_object(data, "event")
        return cls(
            seq=_int(obj, "seq"),
            device_id=_str(obj, "device_id"),
            from_status=_str(obj, "from"),
            to_status=_str(obj, "to"),
            at=_time(obj, "at"),
            reason=_opt_str(obj, "reason"),
            source=_opt_str(obj, "source"),
            flapping=obj.get("flapping") is True,
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One item of a batched heartbeat (``HubClient.heartbeats``)."""

    device_id: str
    attributes: Mapping[str, Any] | None = None
    metrics: Mapping[str, Any] | None = None

    def to_json(self) -> JSONObject:
        body: JSONObject = {"device_id": self.device_id}
        if self.attributes is not None:
            body["attributes"] = dict(self.attributes)
        if self.metrics is not None:
            body["metrics"] = dict(self.metrics)
        return body


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """The hub's answer to one heartbeat."""

    device_id: str
    status: str
    status_since: datetime | None
    last_seen: datetime | None
    next_heartbeat_in: float | None
    pending_commands: tuple[Any, ...]
    should_reconnect: bool
    raw: JSONObject = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: object) -> HeartbeatAck:
        obj = as_object(data)
        commands = obj.get("pending_commands") or []
        if not isinstance(commands, list):
            raise _bad("'pending_commands' is not a list", obj)
        return cls(
            device_id=_str(obj, "device_id"),
            status=_str(obj, "status"),
            status_since=_opt_time(obj, "status_since"),
            last_seen=_opt_time(obj, "last_seen"),
            next_heartbeat_in=_opt_float(obj, "next_heartbeat_in"),
            pending_commands=tuple(commands),
            should_reconnect=obj.get("should_reconnect") is True,
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class BatchItemResult:
    """The fate of one heartbeat of a batch: a ``status``, or an error code and message."""

    device_id: str
    status: str | None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None

    @classmethod
    def from_json(cls, data: object) -> BatchItemResult:
        obj = as_object(data, "batch result")
        error = obj.get("error")
        if error is None:
            return cls(device_id=_str(obj, "device_id"), status=_str(obj, "status"))
        error = as_object(error, "batch error")
        return cls(
            device_id=_str(obj, "device_id"),
            status=None,
            error_code=_str(error, "code"),
            error_message=_opt_str(error, "message") or "",
        )


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The hub's answer to ``POST /v1/heartbeats``; ``results`` in the order sent."""

    accepted: int
    rejected: int
    results: tuple[BatchItemResult, ...]

    @classmethod
    def from_json(cls, data: object) -> BatchResult:
        obj = as_object(data)
        return cls(
            accepted=_int(obj, "accepted"),
            rejected=_int(obj, "rejected"),
            results=tuple(BatchItemResult.from_json(item) for item in _objects(obj, "results")),
        )


@dataclass(frozen=True, slots=True)
class DevicePage:
    """One page of ``GET /v1/devices``: ``seq`` is the snapshot's position in the
    transition stream, ``next`` the cursor of the following page (None at the end)."""

    devices: tuple[Device, ...]
    seq: int | None
    next: str | None

    @classmethod
    def from_json(cls, data: object) -> DevicePage:
        obj = as_object(data)
        return cls(
            devices=tuple(Device.from_json(item) for item in _objects(obj, "devices")),
            seq=_opt_int(obj, "seq"),
            next=_opt_str(obj, "next"),
        )


@dataclass(frozen=True, slots=True)
class EventsPage:
    """A slice of the transition history, in ``seq`` order, and the history's bounds."""

    events: tuple[Transition, ...]
    first_seq: int | None
    last_seq: int | None

    @classmethod
    def from_json(cls, data: object) -> EventsPage:
        obj = as_object(data)
        return cls(
            events=tuple(Transition.from_json(item) for item in _objects(obj, "events")),
            first_seq=_opt_int(obj, "first_seq"),
            last_seq=_opt_int(obj, "last_seq"),
        )


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One frame of ``GET /v1/stream``: ``event`` is ``transition``, ``seen`` or
    ``reset`` (or a kind this client does not know yet), ``id`` the last event id
    in force (the transition's ``seq`` as text), ``data`` the decoded JSON object."""

    event: str
    id: str | None
    data: JSONObject

    def transition(self) -> Transition:
        """The transition this frame carries (``event == "transition"`` only)."""
        if self.event != "transition":
            raise ValueError(f"a {self.event!r} frame carries no transition")
        return Transition.from_json(self.data)
