"""The shell of the resumable event stream: connect, parse, reconnect.

``StreamResume`` (resume.py) decides where to resume and how long to wait,
``SSEParser`` (sse.py) turns bytes into frames; this module does the I/O between
them. A connection that ends, cleanly or not, is followed by another after a
backoff delay, positioned with ``Last-Event-ID``; an answer that retrying cannot
fix ends the stream with its ``HubError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

import httpx
import orjson

from lastseen.client.body import read_capped
from lastseen.client.errors import HubError, HubUnavailable, from_response, from_transport_error
from lastseen.client.models import StreamEvent, as_object
from lastseen.client.resume import StreamResume
from lastseen.client.sse import SSEError, SSEParser

#: The hub sends a keep-alive comment every 15 s; three missed ones mean the
#: connection is dead even if TCP has not noticed.
STREAM_IDLE_TIMEOUT = 45.0

#: Bound on an error answer read from the stream route (only quoted in the message).
_MAX_ERROR_BYTES = 64 << 10

_PATH = "/v1/stream"


async def follow(
    http: httpx.AsyncClient,
    url: str,
    resume: StreamResume,
    query: list[tuple[str, str]],
    *,
    timeout: httpx.Timeout,
    on_retry: Callable[[HubError, float], None] | None = None,
) -> AsyncGenerator[StreamEvent, None]:
    """Every frame of ``GET /v1/stream`` (filtered by ``query``) across reconnects."""
    while True:
        parser = SSEParser(last_event_id=resume.last_event_id)
        frames = _connect(http, url, resume, query, parser, timeout)
        try:
            # aclosing: a caller that stops early must close the connection now,
            # not whenever the garbage collector finalises the generator.
            async with aclosing(frames):
                async for event in frames:
                    resume.received(event)
                    yield event
            error: HubError = HubUnavailable(None, "disconnected", "the hub closed the stream")
        except HubError as exc:
            error = exc
        delay = resume.failed(error, retry_ms=parser.retry)
        if delay is None:
            raise error
        if on_retry is not None:
            on_retry(error, delay)
        await asyncio.sleep(delay)


async def _connect(
    http: httpx.AsyncClient,
    url: str,
    resume: StreamResume,
    query: list[tuple[str, str]],
    parser: SSEParser,
    timeout: httpx.Timeout,
) -> AsyncGenerator[StreamEvent, None]:
    """One connection's frames; its end or failure is the caller's to handle."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **resume.headers()}
    params = (*query, *resume.query())
    try:
        async with http.stream(
            "GET", _PATH, params=params, headers=headers, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                body = await read_capped(response, _MAX_ERROR_BYTES, truncate=True)
                raise from_response(response.status_code, body, response.reason_phrase)
            media_type = response.headers.get("content-type", "").split(";")[0].strip()
            if media_type != "text/event-stream":
                raise HubError(
                    response.status_code,
                    "bad_response",
                    f"expected an event stream from {url}{_PATH}, got {media_type!r}",
                )
            async for chunk in response.aiter_bytes():
                for frame in parser.feed(chunk):
                    yield _decode(frame.event, frame.id, frame.data)
    except httpx.HTTPError as exc:
        raise from_transport_error(exc, url) from exc
    except SSEError as exc:
        raise HubError(None, "bad_stream", str(exc)) from exc


def _decode(event: str, event_id: str | None, data: str) -> StreamEvent:
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise HubError(None, "bad_stream", f"{event!r} frame data is not JSON: {exc}") from exc
    return StreamEvent(event=event, id=event_id, data=as_object(decoded, f"{event!r} frame data"))
