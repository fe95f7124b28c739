"""Live streams: Server-Sent Events and WebSocket, both resumable by seq.

Both carry the same messages: ``transition`` (with ``seq``), ``seen`` (coalesced
last-seen times), ``device`` (registered, updated, deleted) and ``reset`` (the
history a resume needs is gone, or the subscriber fell too far behind: take a new
snapshot). The WebSocket additionally opens with a ``snapshot`` unless it resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from lastseen.errors import InvalidInput, LastseenError, StoreError, Unavailable
from lastseen.http import validation as v
from lastseen.hub.api import HubAPI
from lastseen.hub.broadcast import RESET, TRANSITION, Message, StreamFilter, Subscriber
from lastseen.hub.core import check_device_id

log = logging.getLogger("lastseen.http")

#: WebSocket close codes: try again later (too slow) and policy (bad query). A stream
#: that ends otherwise closes with its subscriber's ``close_code`` (1001 on shutdown,
#: 1008 when its key is revoked).
CLOSE_TRY_AGAIN = 1013
CLOSE_POLICY = 1008


def _filter(conn: HTTPConnection) -> StreamFilter:
    params = conn.query_params
    return StreamFilter(
        devices=frozenset(check_device_id(d) for d in params.getlist("device")),
        statuses=frozenset(v.status(s) for s in params.getlist("status")),
        labels=tuple(v.label_pair(label) for label in params.getlist("label")),
    )


def _after(conn: HTTPConnection) -> int | None:
    header = conn.headers.get("last-event-id")
    if header:
        try:
            value = int(header)
        except ValueError:
            raise InvalidInput("Last-Event-ID must be a seq", code="invalid_parameter") from None
        if value < 0:
            raise InvalidInput("Last-Event-ID must be >= 0", code="invalid_parameter")
        return value
    return v.int_param(conn, "after", None)


def sse_frame(message: Message) -> bytes:
    kind, seq, body = message
    if kind == TRANSITION:
        return b"event: transition\nid: %d\ndata: %s\n\n" % (seq, body)
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), body)


async def stream(request: Request) -> Response:
    hub: HubAPI = request.app.state.hub
    stream_filter = _filter(request)
    after = _after(request)
    subscriber, backlog = await hub.open_stream(stream_filter, after)
    keepalive = hub.settings.keepalive_interval

    async def frames() -> AsyncIterator[bytes]:
        try:
            # retry: how long EventSource waits before reconnecting on its own.
            yield b"retry: 1000\n: connected\n\n"
            async for message in backlog:
                yield sse_frame(message)
            while True:
                live = await subscriber.get(timeout=keepalive)
                if live is None:
                    if subscriber.closed:
                        return
                    yield b": keep-alive\n\n"
                    continue
                # Everything already queued goes out in one write: a burst of
                # transitions costs one send, not one per event.
                batch = [live, *subscriber.drain()]
                yield b"".join(sse_frame(message) for message in batch)
                if subscriber.overflowed and any(m[0] == RESET for m in batch):
                    return
        finally:
            hub.broadcaster.unsubscribe(subscriber)

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@dataclass(slots=True)
class _Session:
    subscriber: Subscriber


def _subscription(message: object) -> StreamFilter:
    if not isinstance(message, dict) or message.get("type") != "subscribe":
        raise InvalidInput('expected {"type": "subscribe", ...}', code="invalid_message")
    devices = message.get("devices") or []
    statuses = message.get("statuses") or []
    labels = message.get("labels") or {}
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise InvalidInput("devices must be a list of ids", code="invalid_message")
    if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
        raise InvalidInput("statuses must be a list of statuses", code="invalid_message")
    return StreamFilter(
        devices=frozenset(check_device_id(d) for d in devices),
        statuses=frozenset(v.status(s) for s in statuses),
        labels=tuple(sorted(v.labels(labels).items())),
    )


async def websocket(ws: WebSocket) -> None:
    hub: HubAPI = ws.app.state.hub
    try:
        stream_filter = _filter(ws)
        after = v.int_param(ws, "after", None)
    except InvalidInput as exc:
        hub.metrics.rejected.inc(1.0, exc.code)
        await ws.close(code=CLOSE_POLICY, reason=exc.code)
        return
    await ws.accept()
    try:
        await _serve(ws, hub, stream_filter, after)
    except* (Unavailable, StoreError) as failure:
        # Past the handshake no HTTP 503 can be sent: close with "try again later" and
        # the error's code, so clients back off and reconnect as they do for a 503.
        error = _leaf(failure)
        log.warning("event=stream_failed transport=websocket code=%s", error.code)
        with contextlib.suppress(RuntimeError, OSError):  # the socket may be gone too
            await ws.close(code=CLOSE_TRY_AGAIN, reason=error.code)


def _leaf(group: BaseExceptionGroup[LastseenError]) -> LastseenError:
    """The first error in a (possibly nested) group split off by ``except*``."""
    first: LastseenError | BaseExceptionGroup[LastseenError] = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


async def _serve(
    ws: WebSocket, hub: HubAPI, stream_filter: StreamFilter, after: int | None
) -> None:
    subscriber, backlog = await hub.open_stream(stream_filter, after)
    session = _Session(subscriber)
    try:
        await _stream(ws, hub, session, stream_filter, after, backlog)
    except* (WebSocketDisconnect, OSError):
        pass
    finally:
        hub.broadcaster.unsubscribe(session.subscriber)


async def _stream(
    ws: WebSocket,
    hub: HubAPI,
    session: _Session,
    stream_filter: StreamFilter,
    after: int | None,
    backlog: AsyncIterator[Message],
) -> None:
    if after is None:
        seq, devices = await hub.read_snapshot(stream_filter)
        await ws.send_text(
            orjson.dumps({"type": "snapshot", "seq": seq, "devices": devices}).decode()
        )
    async for message in backlog:
        await ws.send_text(message[2].decode())

    async def sender() -> None:
        while True:
            current = session.subscriber
            message = await current.get()
            if message is None:
                if current is not session.subscriber:
                    continue  # replaced by a new subscription
                await ws.close(code=current.close_code, reason=current.close_reason)
                return
            for queued in [message, *current.drain()]:
                await ws.send_text(queued[2].decode())
                if current.overflowed and queued[0] == RESET:
                    await ws.close(code=CLOSE_TRY_AGAIN, reason="subscriber too slow")
                    return

    async def receiver() -> None:
        while True:
            raw = await ws.receive_text()
            try:
                new_filter = _subscription(orjson.loads(raw))
            except (InvalidInput, orjson.JSONDecodeError) as exc:
                code = exc.code if isinstance(exc, InvalidInput) else "invalid_json"
                hub.metrics.rejected.inc(1.0, code)
                await ws.send_text(orjson.dumps({"type": "error", "code": code}).decode())
                continue
            old = session.subscriber
            session.subscriber = hub.broadcaster.subscribe(new_filter)
            # Subscribed first, so nothing is lost; what the snapshot reflects is skipped.
            try:
                seq, devices = await hub.read_snapshot(new_filter)
            finally:
                hub.broadcaster.unsubscribe(old)
            session.subscriber.skip_through = seq
            await ws.send_text(
                orjson.dumps({"type": "snapshot", "seq": seq, "devices": devices}).decode()
            )

    async with asyncio.TaskGroup() as group:
        send_task = group.create_task(sender())
        receive_task = group.create_task(receiver())
        send_task.add_done_callback(lambda _: receive_task.cancel())


routes = [
    Route("/v1/stream", stream, methods=["GET"]),
    WebSocketRoute("/v1/ws", websocket),
]
