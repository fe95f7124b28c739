"""The ingest routes (``POST /v1/devices/{id}/heartbeat`` and ``POST /v1/heartbeats``)
as plain ASGI, served ahead of the framework's middleware stack.

These two routes carry nearly all of a fleet's traffic. Profiled under load (see
BENCHMARKS.md), a heartbeat spent more time crossing Starlette's layers (server-error
middleware, the security-headers pass-through, the exception middleware's send
wrapper, the router's regex walk, the route's method check) than in the hub itself.
So ``Ingest`` answers them directly:

* it recognises the two paths with string operations (exactly the shapes the
  router would match; anything else goes the usual way),
* runs the same ``Guard`` (keys, permissions, rate limits, batch rules) as the rest
  of the API,
* and translates errors the way the application's handlers do: a ``LastseenError``
  becomes the usual ``{"code", "message"}`` answer counted in
  ``lastseen_rejected_total``, anything else a logged 500 ``internal_error`` (and
  re-raised for the server to log, as Starlette does).

Answers are byte-identical to the routed ones. The routed versions (``devices.py``)
still exist for requests the fast path does not take: every request of a hub with
``--cors-origin`` (its layer adds headers to every answer), or under a root path.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from lastseen.errors import InvalidInput, LastseenError
from lastseen.http import validation as v
from lastseen.http.auth import Guard
from lastseen.http.responses import error
from lastseen.hub.api import HubAPI
from lastseen.hub.core import BeatResult, check_device_id
from lastseen.security import Security
from lastseen.timefmt import rfc3339, rfc3339_or_none

log = logging.getLogger("lastseen.http")

_FIELDS = frozenset({"attributes", "metrics"})
_BATCH_FIELDS = frozenset({"heartbeats"})
_BATCH_ITEM_FIELDS = frozenset({"device_id", "attributes", "metrics"})
_JSON = (b"content-type", b"application/json")
_PREFIX = "/v1/devices/"
_SUFFIX = "/heartbeat"
_BATCH_PATH = "/v1/heartbeats"
_DEVICE_ID_SET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-")

Item = tuple[str, dict[str, Any] | None, dict[str, float] | None]


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


async def _json(send: Send, answer: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(answer)), _JSON],
        }
    )
    await send({"type": "http.response.body", "body": answer})


async def heartbeat(
    hub: HubAPI, device_id: str, scope: Scope, receive: Receive, send: Send
) -> None:
    """One device's heartbeat, with an optional ``{"attributes", "metrics"}`` body."""
    check_device_id(device_id)
    raw = await v.read_body(scope, receive, hub.settings.max_body)
    attributes = metrics = None
    if raw:
        body = v.require_object(v.parse_json(raw), "heartbeat body")
        v.refuse_unknown(body, _FIELDS, "heartbeat body")
        attributes = v.attributes(body.get("attributes"))
        metrics = v.metrics(body.get("metrics"))
    result = await hub.heartbeat(device_id, attributes=attributes, metrics=metrics)
    await _json(send, orjson.dumps(beat_json(result)))


def _item(item: Any) -> Item:
    """One batch item validated, or its ``LastseenError``; same order of checks as
    ever (object, fields, id type, id, attributes, metrics)."""
    device_id = item.get("device_id") if isinstance(item, dict) else None
    item = v.require_object(item, "batch item")
    v.refuse_unknown(item, _BATCH_ITEM_FIELDS, "batch item")
    if not isinstance(device_id, str):
        raise InvalidInput("device_id must be a string", code="invalid_device_id")
    check_device_id(device_id)
    return (device_id, v.attributes(item.get("attributes")), v.metrics(item.get("metrics")))


async def heartbeats(hub: HubAPI, scope: Scope, receive: Receive, send: Send) -> None:
    """A gateway's batch. The envelope is all-or-nothing; items are judged one by one."""
    settings = hub.settings
    raw = await v.read_body(scope, receive, settings.max_body)
    body = v.require_object(v.parse_json(raw), "batch body")
    v.refuse_unknown(body, _BATCH_FIELDS, "batch body")
    items = body.get("heartbeats")
    if not isinstance(items, list):
        raise InvalidInput("heartbeats must be a JSON array", code="invalid_body")
    if len(items) > settings.max_batch:
        raise InvalidInput(
            f"at most {settings.max_batch} heartbeats per batch", code="batch_too_large"
        )
    accepted: list[Item] = []
    # Per item: None for an accepted one (answered from the hub's result), else the
    # refusal already shaped.
    slots: list[dict[str, Any] | None] = []
    rejected = 0
    count = hub.metrics.rejected.inc
    plain = _DEVICE_ID_SET.issuperset
    for item in items:
        # The common item, {"device_id": "<valid id>"}, checked inline (a set test is
        # cheaper than the regex for the short ids fleets use); the rest in _item.
        if type(item) is dict and len(item) == 1:
            device_id = item.get("device_id")
            if type(device_id) is str and 0 < len(device_id) <= 128 and plain(device_id):
                accepted.append((device_id, None, None))
                slots.append(None)
                continue
        try:
            accepted.append(_item(item))
            slots.append(None)
        except LastseenError as exc:
            rejected += 1
            count(1.0, exc.code)
            given = item.get("device_id") if isinstance(item, dict) else None
            slots.append(
                {
                    "device_id": given if isinstance(given, str) else None,
                    "error": {"code": exc.code, "message": exc.message},
                }
            )
    results = iter(zip(accepted, await hub.heartbeats(accepted), strict=True))
    out: list[dict[str, Any]] = []
    for slot in slots:
        if slot is not None:
            out.append(slot)
            continue
        (device_id, _, _), result = next(results)
        if isinstance(result, LastseenError):
            rejected += 1
            count(1.0, result.code)
            error_body = {"code": result.code, "message": result.message}
            out.append({"device_id": device_id, "error": error_body})
        else:
            # Status is a StrEnum: orjson writes its value, as ``.value`` would.
            out.append({"device_id": device_id, "status": result.state.status})
    answer = {"accepted": len(out) - rejected, "rejected": rejected, "results": out}
    await _json(send, orjson.dumps(answer))


class HeartbeatEndpoint:
    """The routed heartbeat (used when the fast path does not take a request)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub: HubAPI = scope["app"].state.hub
        await heartbeat(hub, scope["path_params"]["device_id"], scope, receive, send)


class BatchEndpoint:
    """The routed batch of heartbeats (used when the fast path does not take a request)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await heartbeats(scope["app"].state.hub, scope, receive, send)


class Ingest:
    """The fast path for the two ingest routes of ``hub``, guarded by ``security``."""

    def __init__(self, hub: HubAPI, security: Security) -> None:
        self.hub = hub
        self.cors = bool(hub.settings.cors_origin)
        self.guard = Guard(self._route, hub, security)

    def takes(self, scope: Scope) -> bool:
        """Is this a request the fast path answers exactly as the full stack would?"""
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("root_path"):
            return False
        if self.cors:
            # The CORS layer adds headers (``Vary: Origin`` even without an Origin).
            return False
        path: str = scope["path"]
        if path != _BATCH_PATH:
            if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
                return False
            device_id = path[len(_PREFIX) : -len(_SUFFIX)]
            # The router's ``{device_id}`` is one non-empty path segment.
            if not device_id or "/" in device_id:
                return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.guard(scope, receive, tracked)
        except Exception as exc:
            # As Starlette's server-error layer: a bug is logged, answered with the
            # usual error shape if nothing was sent yet, and re-raised for the server.
            log.error("event=internal_error path=%s error=%s", scope["path"], type(exc).__name__)
            if not started:
                answer = error(500, "internal_error", "the hub failed to handle this request")
                await answer(scope, receive, send)
            raise

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What the router and the exception layer did for these two routes."""
        hub = self.hub
        try:
            path: str = scope["path"]
            if path == _BATCH_PATH:
                await heartbeats(hub, scope, receive, send)
            else:
                await heartbeat(hub, path[len(_PREFIX) : -len(_SUFFIX)], scope, receive, send)
        except LastseenError as exc:
            if exc.http_status < 500:
                hub.metrics.rejected.inc(1.0, exc.code)
            else:
                log.warning("event=request_failed path=%s code=%s", scope["path"], exc.code)
            await error(exc.http_status, exc.code, exc.message)(scope, receive, send)


class IngestApp(Starlette):
    """The application, with ``ingest`` (when set) answering its routes first."""

    ingest: Ingest | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ingest = self.ingest
        if ingest is not None and ingest.takes(scope):
            scope["app"] = self
            await ingest(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
