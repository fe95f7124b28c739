"""``POST /v1/devices/{id}/heartbeat``: the hot path, as a plain ASGI endpoint.

This one route carries nearly all of a fleet's traffic, so it skips the framework's
per-request Request/Response objects and speaks ASGI directly: read the body from
``receive`` (not at all when ``Content-Length: 0``), let the hub decide, write one
pre-shaped JSON answer. Routing, authentication and error translation still come
from the application around it: a ``LastseenError`` raised here becomes the usual
``{"code", "message"}`` answer.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from lastseen.http import validation as v
from lastseen.hub.api import HubAPI
from lastseen.hub.core import BeatResult, check_device_id
from lastseen.timefmt import rfc3339, rfc3339_or_none

_FIELDS = frozenset({"attributes", "metrics"})
_JSON = (b"content-type", b"application/json")


def beat_json(result: BeatResult) -> dict[str, Any]:
    state = result.state
    return {
        "device_id": result.device_id,
        "status": state.status.value,
        "status_since": rfc3339(state.since),
        "last_seen": rfc3339_or_none(state.last_seen),
        "next_heartbeat_in": result.profile.heartbeat_hint,
        "pending_commands": [],
        "should_reconnect": False,
    }


class HeartbeatEndpoint:
    """The ASGI app behind the heartbeat route."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub: HubAPI = scope["app"].state.hub
        device_id = check_device_id(scope["path_params"]["device_id"])
        raw = await v.read_body(scope, receive, hub.settings.max_body)
        body = v.parse_json(raw, allow_empty=True)
        attributes = metrics = None
        if body is not None:
            body = v.require_object(body, "heartbeat body")
            v.refuse_unknown(body, _FIELDS, "heartbeat body")
            attributes = v.attributes(body.get("attributes"))
            metrics = v.metrics(body.get("metrics"))
        result = await hub.heartbeat(device_id, attributes=attributes, metrics=metrics)
        answer = orjson.dumps(beat_json(result))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON, (b"content-length", b"%d" % len(answer))],
            }
        )
        await send({"type": "http.response.body", "body": answer})
