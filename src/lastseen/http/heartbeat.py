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
  of the API; a heartbeat the guard would pass without awaiting anything (no query
  string, no profile with a device rate, open mode or a key with no rate of its own
  that may send this heartbeat and register) is answered without crossing it,
* and translates errors the way the application's handlers do: a ``LastseenError``
  becomes the usual ``{"code", "message"}`` answer counted in
  ``lastseen_rejected_total``, anything else a logged 500 ``internal_error`` (and
  re-raised for the server to log, as Starlette does).

Answers are byte-identical to the routed ones (both are written by ``answers``). The
routed versions (``devices.py``) still exist for requests the fast path does not
take: every request of a hub with ``--cors-origin`` (its layer adds headers to every
answer), or under a root path.
"""

from __future__ import annotations

import logging
import operator
from itertools import repeat
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from lastseen.errors import InvalidInput, LastseenError
from lastseen.http import validation as v
from lastseen.http.answers import (
    batch_answer,
    beat_answer,
    item_json,
    online_batch,
    refusal_json,
)
from lastseen.http.auth import Guard
from lastseen.http.responses import error
from lastseen.hub.api import HubAPI
from lastseen.hub.core import check_device_id
from lastseen.presence import Status
from lastseen.security import Kind, Role, Security, allows

log = logging.getLogger("lastseen.http")

_FIELDS = frozenset({"attributes", "metrics"})
_BATCH_FIELDS = frozenset({"heartbeats"})
_BATCH_ITEM_FIELDS = frozenset({"device_id", "attributes", "metrics"})
_JSON = (b"content-type", b"application/json")
_PREFIX = "/v1/devices/"
_SUFFIX = "/heartbeat"
_BATCH_PATH = "/v1/heartbeats"
#: What ``Ingest.route`` answers for the batch path (a device id is never empty).
BATCH = ""
# check_device_id's alphabet: a set test is cheaper than the regex for short ids.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-"
_plain = frozenset(_ALPHABET).issuperset
_ALPHABET_BYTES = _ALPHABET.encode()
_device_id = operator.itemgetter("device_id")

Item = tuple[str, dict[str, Any] | None, dict[str, float] | None]


async def _json(send: Send, answer: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(answer)), _JSON],
        }
    )
    await send({"type": "http.response.body", "body": answer})


async def beat(hub: HubAPI, device_id: str, scope: Scope, receive: Receive) -> bytes:
    """One device's heartbeat, with an optional ``{"attributes", "metrics"}`` body;
    the answer's JSON."""
    if not (0 < len(device_id) <= 128 and _plain(device_id)):
        check_device_id(device_id)  # refuses it (the same alphabet, as a regex)
    limit = hub.settings.max_body
    # Most heartbeats declare an empty body: nothing to await.
    raw = b"" if v.declared_length(scope, limit) == 0 else await v.receive_body(receive, limit)
    if not raw:
        return beat_answer(await hub.heartbeat(device_id))
    body = v.require_object(v.parse_json(raw), "heartbeat body")
    v.refuse_unknown(body, _FIELDS, "heartbeat body")
    attributes = v.attributes(body.get("attributes"))
    metrics = v.metrics(body.get("metrics"))
    return beat_answer(await hub.heartbeat(device_id, attributes=attributes, metrics=metrics))


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


def _items(body: Any, max_batch: int) -> list[Any]:
    body = v.require_object(body, "batch body")
    v.refuse_unknown(body, _BATCH_FIELDS, "batch body")
    items = body.get("heartbeats")
    if not isinstance(items, list):
        raise InvalidInput("heartbeats must be a JSON array", code="invalid_body")
    if len(items) > max_batch:
        raise InvalidInput(f"at most {max_batch} heartbeats per batch", code="batch_too_large")
    return items


def plain_batch(items: list[Any]) -> list[str] | None:
    """The device ids when every item is the common one, ``{"device_id": "<valid id>"}``,
    else None (the items are then judged one by one).

    The checks run as C loops over the whole batch (``map``, ``set``, one ``join``),
    not as Python per item: every item has one key, and it is ``device_id`` (anything
    but a dict fails ``len`` or the lookup: JSON gives dicts, lists, strings, numbers
    and null), every id is a string of 1-128 characters, and their concatenation is
    ASCII with nothing left once ``check_device_id``'s alphabet is deleted.
    """
    try:
        if set(map(len, items)) != {1}:
            return None
        ids: list[str] = list(map(_device_id, items))
    except (TypeError, KeyError):
        return None
    if set(map(type, ids)) != {str}:
        return None
    lengths = set(map(len, ids))
    if min(lengths) < 1 or max(lengths) > 128:
        return None
    try:
        joined = "".join(ids).encode("ascii")
    except UnicodeEncodeError:
        return None
    return ids if not joined.translate(None, _ALPHABET_BYTES) else None


async def heartbeats(hub: HubAPI, scope: Scope, receive: Receive, send: Send) -> None:
    """A gateway's batch. The envelope is all-or-nothing; items are judged one by one."""
    settings = hub.settings
    raw = await v.read_body(scope, receive, settings.max_body)
    items = _items(v.parse_json(raw), settings.max_batch)
    ids = plain_batch(items)
    if ids is None:
        await _json(send, await _judged(hub, items))
        return
    results = await hub.heartbeat_statuses(list(zip(ids, repeat(None), repeat(None))))
    if results.count(Status.ONLINE) == len(results):
        await _json(send, online_batch(ids))
        return
    await _json(send, _answered(hub, ids, results, []))


async def _judged(hub: HubAPI, items: list[Any]) -> bytes:
    """A batch of any items: each validated (refusals counted and kept in place), the
    rest handed to the hub."""
    accepted: list[Item] = []
    # Items refused before the hub saw them: their place in the batch, their answer.
    refused: list[tuple[int, str]] = []
    count = hub.metrics.rejected.inc
    for index, item in enumerate(items):
        # The common item, {"device_id": "<valid id>"}, checked inline; the rest in _item.
        if type(item) is dict and len(item) == 1:
            device_id = item.get("device_id")
            if type(device_id) is str and 0 < len(device_id) <= 128 and _plain(device_id):
                accepted.append((device_id, None, None))
                continue
        try:
            accepted.append(_item(item))
        except LastseenError as exc:
            count(1.0, exc.code)
            given = item.get("device_id") if isinstance(item, dict) else None
            given = given if isinstance(given, str) else None
            refused.append((index, refusal_json(given, exc.code, exc.message)))
    results = await hub.heartbeat_statuses(accepted)
    return _answered(hub, [item[0] for item in accepted], results, refused)


def _answered(
    hub: HubAPI,
    ids: list[str],
    results: list[Status | InvalidInput],
    refused: list[tuple[int, str]],
) -> bytes:
    """The batch's answer: the hub's results for ``ids``, ``refused`` put back in place."""
    count = hub.metrics.rejected.inc
    rejected = len(refused)
    out: list[str] = []
    append = out.append
    for device_id, result in zip(ids, results, strict=True):
        if isinstance(result, LastseenError):
            rejected += 1
            count(1.0, result.code)
            append(refusal_json(device_id, result.code, result.message))
        else:
            append(item_json(device_id, result))
    # In ascending order every earlier slot is already in place.
    for index, answer in refused:
        out.insert(index, answer)
    return batch_answer(len(out) - rejected, rejected, out)


class HeartbeatEndpoint:
    """The routed heartbeat (used when the fast path does not take a request)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub: HubAPI = scope["app"].state.hub
        await _json(send, await beat(hub, scope["path_params"]["device_id"], scope, receive))


class BatchEndpoint:
    """The routed batch of heartbeats (used when the fast path does not take a request)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await heartbeats(scope["app"].state.hub, scope, receive, send)


def _bearer(scope: Scope) -> bytes | None:
    """The guard's reading of ``Authorization: Bearer <key>`` (a heartbeat path is not a
    stream path, so a ``?token=`` never counts)."""
    value: bytes
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else None
    return None


class Ingest:
    """The fast path for the two ingest routes of ``hub``, guarded by ``security``."""

    def __init__(self, hub: HubAPI, security: Security) -> None:
        self.hub = hub
        self.cors = bool(hub.settings.cors_origin)
        self.guard = Guard(self._route, hub, security)

    def route(self, scope: Scope) -> str | None:
        """The device id of a heartbeat (``BATCH`` for a batch) that the fast path
        answers exactly as the full stack would, else None."""
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("root_path"):
            return None
        if self.cors:
            # The CORS layer adds headers (``Vary: Origin`` even without an Origin).
            return None
        path: str = scope["path"]
        if path == _BATCH_PATH:
            return BATCH
        if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
            return None
        device_id = path[len(_PREFIX) : -len(_SUFFIX)]
        # The router's ``{device_id}`` is one non-empty path segment.
        if not device_id or "/" in device_id:
            return None
        return device_id

    def unguarded(self, scope: Scope, device_id: str) -> bool:
        """Would the guard pass this heartbeat without awaiting anything? Then it can be
        answered without crossing it: these are exactly the guard's own conditions
        (authenticated, allowed, no repeated query parameter, no key or device rate to
        consult, no registration rule to look up)."""
        guard = self.guard
        if scope.get("query_string") or guard.rates.any:
            return False
        if guard.open:
            return True
        secret = _bearer(scope)
        principal = guard.keyring.lookup(secret) if secret else None
        return (
            principal is not None
            and principal.rate is None
            and allows(principal, Kind.HEARTBEAT, device_id)
            and (guard.ingest_register or principal.role is not Role.INGEST)
        )

    async def beat(self, device_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        """An unguarded heartbeat (see ``unguarded``): no layers, no send wrapper."""
        try:
            answer = await beat(self.hub, device_id, scope, receive)
        except LastseenError as exc:
            await self.run(self._refusal(exc), scope, receive, send)
            return
        except Exception as exc:
            await self._failed(exc, scope, receive, send, started=False)
            raise
        try:
            await _json(send, answer)
        except Exception as exc:
            await self._failed(exc, scope, receive, send, started=True)
            raise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.run(self.guard, scope, receive, send)

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """``app`` with the server-error layer's handling of what escapes it."""
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracked)
        except Exception as exc:
            await self._failed(exc, scope, receive, send, started=started)
            raise

    @staticmethod
    async def _failed(
        exc: Exception, scope: Scope, receive: Receive, send: Send, *, started: bool
    ) -> None:
        # As Starlette's server-error layer: a bug is logged, answered with the usual
        # error shape if nothing was sent yet (the caller re-raises it for the server).
        log.error("event=internal_error path=%s error=%s", scope["path"], type(exc).__name__)
        if not started:
            answer = error(500, "internal_error", "the hub failed to handle this request")
            await answer(scope, receive, send)

    def _refusal(self, exc: LastseenError) -> ASGIApp:
        async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
            await self._refuse(exc, scope, receive, send)

        return refuse

    async def _refuse(self, exc: LastseenError, scope: Scope, receive: Receive, send: Send) -> None:
        """What the exception layer did with a ``LastseenError`` from these routes."""
        if exc.http_status < 500:
            self.hub.metrics.rejected.inc(1.0, exc.code)
        else:
            log.warning("event=request_failed path=%s code=%s", scope["path"], exc.code)
        await error(exc.http_status, exc.code, exc.message)(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What the router and the exception layer did for these two routes."""
        hub = self.hub
        try:
            path: str = scope["path"]
            if path == _BATCH_PATH:
                await heartbeats(hub, scope, receive, send)
            else:
                device_id = path[len(_PREFIX) : -len(_SUFFIX)]
                await _json(send, await beat(hub, device_id, scope, receive))
        except LastseenError as exc:
            await self._refuse(exc, scope, receive, send)


class IngestApp(Starlette):
    """The application, with ``ingest`` (when set) answering its routes first."""

    ingest: Ingest | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ingest = self.ingest
        if ingest is not None:
            device_id = ingest.route(scope)
            if device_id is not None:
                scope["app"] = self
                if device_id != BATCH and ingest.unguarded(scope, device_id):
                    await ingest.beat(device_id, scope, receive, send)
                else:
                    await ingest(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
