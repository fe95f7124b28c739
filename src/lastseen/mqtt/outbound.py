"""What the bridge publishes, retained: presence, availability and discovery.

Pure: each function turns a presence fact into ``Retained`` messages (topic and
payload bytes). The shell publishes them. An empty payload clears a retained topic
(MQTT 3.1.1 §3.3.1.3), which is how a deleted device disappears.

* ``{prefix}{id}/presence`` — JSON ``{"status", "since", "reason", "source"}``.
* ``{prefix}{id}/availability`` — ``online`` or ``offline``, Home Assistant's
  availability convention. ``stale`` says ``online`` by default (``--mqtt-stale``):
  stale is the grace period in which one late heartbeat must not flip a dashboard
  entity to "unavailable"; the device is offline once ``offline_after`` passes.
  ``unknown`` (registered, never seen) says ``offline``.
* ``{discovery_prefix}binary_sensor/{object_id}/connectivity/config`` — with
  ``--mqtt-discovery``, a Home Assistant ``connectivity`` binary sensor per device.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from lastseen.presence import Status

#: Home Assistant object ids allow only these characters.
_NOT_OBJECT_ID = re.compile(r"[^A-Za-z0-9_-]")
AVAILABILITY, PRESENCE, DISCOVERY = "availability", "presence", "discovery"


@dataclass(frozen=True, slots=True)
class Retained:
    """One retained publish; ``kind`` is the ``topic`` label of the publish metric."""

    topic: str
    payload: bytes
    kind: str


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names of one bridge."""

    prefix: str
    discovery_prefix: str = "homeassistant/"
    stale_online: bool = True
    discovery: bool = False

    def presence(self, device_id: str) -> str:
        return f"{self.prefix}{device_id}/presence"

    def availability(self, device_id: str) -> str:
        return f"{self.prefix}{device_id}/availability"

    def discovery_config(self, device_id: str) -> str:
        return f"{self.discovery_prefix}binary_sensor/{object_id(device_id)}/connectivity/config"


def object_id(device_id: str) -> str:
    """A Home Assistant object id for ``device_id``: the id where it is already valid,
    else the id with other characters as ``_`` plus a short hash (``a.b`` and ``a_b``
    must not collide)."""
    clean = _NOT_OBJECT_ID.sub("_", device_id)
    if clean == device_id:
        return "lastseen_" + clean
    digest = hashlib.sha256(device_id.encode()).hexdigest()[:8]
    return f"lastseen_{clean}_{digest}"


def availability(status: Status, *, stale_online: bool = True) -> bytes:
    if status is Status.ONLINE or (status is Status.STALE and stale_online):
        return b"online"
    return b"offline"


def presence(
    topics: Topics,
    device_id: str,
    status: Status,
    since: str,
    reason: str | None,
    source: str | None,
) -> list[Retained]:
    """The retained presence and availability of one device."""
    fields = {"status": status.value, "since": since, "reason": reason, "source": source}
    body = orjson.dumps(fields)
    return [
        Retained(topics.presence(device_id), body, PRESENCE),
        Retained(
            topics.availability(device_id),
            availability(status, stale_online=topics.stale_online),
            AVAILABILITY,
        ),
    ]


def from_transition(topics: Topics, event: Mapping[str, Any]) -> list[Retained]:
    """Messages for one transition event (the JSON object of ``/v1/events``)."""
    messages = presence(
        topics,
        event["device_id"],
        Status(event["to"]),
        event["at"],
        event["reason"],
        event["source"],
    )
    if topics.discovery and event["from"] == Status.UNKNOWN.value:
        # A device registered by its first heartbeat has no "created" message.
        messages.append(discovery(topics, event["device_id"]))
    return messages


def from_device(topics: Topics, device: Mapping[str, Any]) -> list[Retained]:
    """Messages for one device of a snapshot (the JSON object of ``/v1/devices``)."""
    messages = presence(
        topics,
        device["id"],
        Status(device["status"]),
        device["status_since"],
        device["reason"],
        device["source"],
    )
    if topics.discovery:
        messages.append(discovery(topics, device["id"]))
    return messages


def discovery(topics: Topics, device_id: str) -> Retained:
    """A Home Assistant discovery config: a connectivity sensor fed by availability."""
    unique = object_id(device_id)
    config = {
        "name": "Connectivity",
        "unique_id": unique,
        "object_id": unique,
        "device_class": "connectivity",
        "state_topic": topics.availability(device_id),
        "payload_on": "online",
        "payload_off": "offline",
        "json_attributes_topic": topics.presence(device_id),
        "device": {"identifiers": [unique], "name": device_id},
    }
    return Retained(topics.discovery_config(device_id), orjson.dumps(config), DISCOVERY)


def cleared(topics: Topics, device_id: str) -> list[Retained]:
    """Empty retained payloads that remove a deleted device's topics."""
    messages = [
        Retained(topics.presence(device_id), b"", PRESENCE),
        Retained(topics.availability(device_id), b"", AVAILABILITY),
    ]
    if topics.discovery:
        messages.append(Retained(topics.discovery_config(device_id), b"", DISCOVERY))
    return messages


def orphans(topics: Topics, retained: Iterable[str], known: Container[str]) -> list[str]:
    """Device ids that have a retained ``presence`` topic on the broker but are not
    devices of the hub (deleted while the bridge was away), in topic order."""
    found: list[str] = []
    suffix = "/presence"
    for topic in retained:
        if topic.startswith(topics.prefix) and topic.endswith(suffix):
            device_id = topic[len(topics.prefix) : -len(suffix)]
            if device_id and "/" not in device_id and device_id not in known:
                found.append(device_id)
    return found
