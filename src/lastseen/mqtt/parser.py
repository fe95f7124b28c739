"""Inbound MQTT messages decoded into observations, or refused with a reason.

Pure and synchronous: a topic, a payload and two facts about the message go in, an
``Inbound`` (what the device said) or a ``Rejected`` (why it is dropped) comes out.
Nothing here touches the hub, the network or the clock, so every payload a device
could send is checked by property tests without a broker.

Topics, under the configured prefix (``lastseen/`` by default):

* ``{prefix}{id}/heartbeat`` — empty, or JSON ``{"attributes": {...}, "metrics": {...}}``
  with the same rules and limits as the HTTP heartbeat body.
* ``{prefix}{id}/telemetry`` — any payload is a sign of life: it is the device's own
  format (JSON, CBOR, protobuf...), so its bytes are not judged. A JSON object within
  the attribute limits becomes the device's latest attributes.
* ``{prefix}{id}/status`` — the device's birth (``online``) and last will
  (``offline``), plain text or JSON ``{"state": "offline", "session": 7}``. A session
  number lets the engine ignore the will of an older connection that the broker
  delivers after the birth of a newer one; plain text applies to the current session.

A retained heartbeat or telemetry message is refused: it is an old message the
broker replays to a new subscriber, not a sign of life now. A retained status is the
device's last word (birth and will are usually retained together) and is applied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from lastseen.errors import InvalidInput
from lastseen.http import validation as v
from lastseen.presence import Observation, Source

#: The hub's device id rule (``lastseen.hub.core.DEVICE_ID``); a test keeps them equal.
DEVICE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
#: Largest session number accepted (it is stored as a signed 64-bit integer).
MAX_SESSION = 2**63 - 1
_BEAT_FIELDS = frozenset({"attributes", "metrics"})
_STATUS_FIELDS = frozenset({"state", "session"})
_STATES = {"online": True, "offline": False}


class Kind(StrEnum):
    """The inbound topic a message came on (its last level)."""

    HEARTBEAT = "heartbeat"
    TELEMETRY = "telemetry"
    STATUS = "status"


class Reason(StrEnum):
    """Why an inbound message was dropped; the ``reason`` label of
    ``lastseen_mqtt_rejected_total``."""

    UNKNOWN_TOPIC = "unknown_topic"
    INVALID_DEVICE_ID = "invalid_device_id"
    OVERSIZE = "oversize"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    INVALID_PAYLOAD = "invalid_payload"
    INVALID_STATUS = "invalid_status"
    RETAINED = "retained"
    #: Set by the bridge, not the parser: ``--mqtt-strict`` and an unregistered id.
    UNKNOWN_DEVICE = "unknown_device"
    #: Set by the bridge: the hub refused the change (e.g. too many attributes).
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Inbound:
    """What a device said. ``online`` and ``session`` belong to ``status`` messages."""

    device_id: str
    kind: Kind
    attributes: Mapping[str, Any] | None = None
    metrics: Mapping[str, Any] | None = None
    online: bool = True
    session: int | None = None

    def observation(self) -> Observation:
        """The engine's view: a heartbeat, telemetry, connect or disconnect."""
        if self.kind is Kind.HEARTBEAT:
            return Observation(Source.HEARTBEAT)
        if self.kind is Kind.TELEMETRY:
            return Observation(Source.TELEMETRY)
        return Observation(Source.CONNECT if self.online else Source.DISCONNECT, self.session)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A dropped message: the reason (a metric label) and a detail for the log."""

    reason: Reason
    detail: str
    device_id: str | None = None


def split_topic(prefix: str, topic: str) -> tuple[str, Kind] | Rejected:
    """``{prefix}{id}/{kind}`` into its device id and kind."""
    if not topic.startswith(prefix):
        return Rejected(Reason.UNKNOWN_TOPIC, "outside the topic prefix")
    device_id, _, last = topic[len(prefix) :].partition("/")
    try:
        kind = Kind(last)
    except ValueError:
        return Rejected(Reason.UNKNOWN_TOPIC, "not a heartbeat, telemetry or status topic")
    if DEVICE_ID.fullmatch(device_id) is None:
        return Rejected(
            Reason.INVALID_DEVICE_ID,
            "device id must be 1-128 characters of A-Z a-z 0-9 . _ : @ -",
        )
    return device_id, kind


def decode(
    prefix: str, topic: str, payload: bytes, *, max_payload: int, retained: bool = False
) -> Inbound | Rejected:
    """Decode one inbound message; never raises for any topic or payload."""
    where = split_topic(prefix, topic)
    if isinstance(where, Rejected):
        return where
    return decode_at(*where, payload, max_payload=max_payload, retained=retained)


class CachedDecoder:
    """``decode`` with a memo of the topics seen lately, for the bridge's hot path.

    A fleet repeats the same few topics per device, so after the first message a
    topic costs one dict lookup instead of a split, an enum lookup and a regular
    expression; the empty heartbeat (the commonest message) is a shared ``Inbound``.
    Only valid topics are kept, at most ``limit``; when full the memo starts over
    (policy ``reset``), which costs one parse per topic again, nothing else.
    """

    __slots__ = ("_topics", "limit", "max_payload", "prefix")

    def __init__(self, prefix: str, *, max_payload: int, limit: int = 200_000) -> None:
        self.prefix = prefix
        self.max_payload = max_payload
        self.limit = limit
        self._topics: dict[str, tuple[str, Kind, Inbound | None]] = {}

    def __call__(self, topic: str, payload: bytes, retained: bool) -> Inbound | Rejected:
        where = self._topics.get(topic)
        if where is None:
            split = split_topic(self.prefix, topic)
            if isinstance(split, Rejected):
                return split
            device_id, kind = split
            beat = Inbound(device_id, kind) if kind is Kind.HEARTBEAT else None
            if len(self._topics) >= self.limit:
                self._topics.clear()
            where = self._topics[topic] = (device_id, kind, beat)
        device_id, kind, beat = where
        if beat is not None and not payload and not retained:
            return beat
        return decode_at(device_id, kind, payload, max_payload=self.max_payload, retained=retained)


def decode_at(
    device_id: str, kind: Kind, payload: bytes, *, max_payload: int, retained: bool
) -> Inbound | Rejected:
    """The payload part of ``decode``, for a topic already split."""
    if len(payload) > max_payload:
        return Rejected(Reason.OVERSIZE, f"payload over {max_payload} bytes", device_id)
    if retained and kind is not Kind.STATUS:
        return Rejected(Reason.RETAINED, "a retained message is not a sign of life", device_id)
    if kind is Kind.TELEMETRY:
        return Inbound(device_id, kind, attributes=_telemetry_attributes(payload))
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return Rejected(Reason.NOT_UTF8, "payload is not UTF-8", device_id)
    if kind is Kind.HEARTBEAT:
        return _heartbeat(device_id, payload)
    return _status(device_id, text)


def _telemetry_attributes(payload: bytes) -> Mapping[str, Any] | None:
    if payload.lstrip()[:1] != b"{":
        return None
    try:
        return v.attributes(orjson.loads(payload))
    except (orjson.JSONDecodeError, InvalidInput):
        # Still a sign of life: only the attributes are not taken.
        return None


def _heartbeat(device_id: str, payload: bytes) -> Inbound | Rejected:
    if not payload:
        return Inbound(device_id, Kind.HEARTBEAT)
    try:
        body = v.require_object(v.parse_json(payload), "heartbeat payload")
        v.refuse_unknown(body, _BEAT_FIELDS, "heartbeat payload")
        attributes = v.attributes(body.get("attributes"))
        metrics = v.metrics(body.get("metrics"))
    except InvalidInput as exc:
        reason = Reason.INVALID_JSON if exc.code == "invalid_json" else Reason.INVALID_PAYLOAD
        return Rejected(reason, f"{exc.code}: {exc.message}", device_id)
    return Inbound(device_id, Kind.HEARTBEAT, attributes=attributes, metrics=metrics)


def _status(device_id: str, text: str) -> Inbound | Rejected:
    word = text.strip().lower()
    if word in _STATES:
        return Inbound(device_id, Kind.STATUS, online=_STATES[word])
    if not word.startswith("{"):
        return Rejected(
            Reason.INVALID_STATUS, 'expected online, offline or {"state", "session"}', device_id
        )
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Rejected(Reason.INVALID_JSON, "status payload is not valid JSON", device_id)
    return _status_object(device_id, body)


def _status_object(device_id: str, body: Any) -> Inbound | Rejected:
    if not isinstance(body, dict) or any(key not in _STATUS_FIELDS for key in body):
        return Rejected(
            Reason.INVALID_STATUS, 'a status object has only "state" and "session"', device_id
        )
    state = body.get("state")
    if not isinstance(state, str) or state not in _STATES:
        return Rejected(Reason.INVALID_STATUS, 'state must be "online" or "offline"', device_id)
    session = body.get("session")
    if session is not None and (
        isinstance(session, bool) or not isinstance(session, int) or not 0 <= session <= MAX_SESSION
    ):
        return Rejected(
            Reason.INVALID_STATUS, f"session must be an integer 0..{MAX_SESSION}", device_id
        )
    return Inbound(device_id, Kind.STATUS, online=_STATES[state], session=session)
