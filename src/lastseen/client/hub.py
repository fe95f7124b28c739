"""``HubClient``: the async Python client of the hub's HTTP API (docs/api.md).

One ``httpx.AsyncClient`` with keep-alive per ``HubClient``; use it as an async
context manager (or call ``aclose``). Every ``httpx`` exception is translated into
``HubError``/``HubUnavailable`` here, at the edge, and answers are read with a size
bound so a broken proxy cannot make the client buffer without limit.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import orjson

from lastseen import __version__
from lastseen.client.body import read_capped
from lastseen.client.errors import HubError, from_response, from_transport_error
from lastseen.client.models import (
    BatchResult,
    Device,
    DevicePage,
    EventsPage,
    Heartbeat,
    HeartbeatAck,
    StreamEvent,
)
from lastseen.client.resume import Backoff, RandomSource, StreamResume
from lastseen.client.stream import STREAM_IDLE_TIMEOUT, follow

DEFAULT_URL = "http://127.0.0.1:8080"

#: The hub's limits (docs/api.md): items per batched heartbeat, page size.
MAX_BATCH = 1000
MAX_LIMIT = 1000

#: Bound on one (non-stream) answer; a full page of 1000 devices is far below it.
MAX_RESPONSE_BYTES = 32 << 20


def _segment(device_id: str) -> str:
    """``device_id`` as one URL path segment."""
    if not device_id:
        raise ValueError("device id must not be empty")
    # "." and ".." would be collapsed as dot-segments by URL normalisation.
    if device_id.strip(".") == "":
        return device_id.replace(".", "%2E")
    return quote(device_id, safe=":@")


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


class HubClient:
    """Talks to one hub at ``url`` (e.g. ``http://127.0.0.1:8080``), optionally with
    an API ``key`` sent as a Bearer token.

    ``max_connections`` bounds the connections kept open (and so the requests in
    flight); ``transport`` replaces the network, for tests.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        key: str | None = None,
        *,
        timeout: float = 10.0,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: RandomSource | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"User-Agent": f"lastseen-client/{__version__}", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            self._http = httpx.AsyncClient(
                base_url=self.url,
                headers=headers,
                timeout=timeout,
                limits=httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
                transport=transport,
            )
        except httpx.InvalidURL as exc:
            raise HubError(None, "invalid_url", f"invalid hub URL {url!r}: {exc}") from exc
        self._timeout = timeout
        self._rng: RandomSource = rng if rng is not None else random.Random()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    # -- plumbing ---------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: object = None,
    ) -> object:
        """Send a request; the decoded JSON answer (None if empty), or a ``HubError``
        for an error answer or a failure."""
        headers: dict[str, str] = {}
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            request = self._http.build_request(
                method, path, params=tuple(params or ()), content=content, headers=headers
            )
            response = await self._http.send(request, stream=True)
            try:
                payload = await read_capped(response, MAX_RESPONSE_BYTES)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise from_transport_error(exc, self.url) from exc
        except httpx.InvalidURL as exc:
            raise HubError(None, "invalid_url", f"invalid request URL: {exc}") from exc
        status = response.status_code
        if status >= 400:
            raise from_response(status, payload, response.reason_phrase)
        if not payload:
            return None
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise HubError(status, "bad_response", f"the hub's answer is not JSON: {exc}") from exc

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: object = None,
    ) -> object:
        """Any API route: the decoded JSON answer, or a ``HubError`` (used by the
        ``webhooks`` CLI; the typed methods below are the library's main interface)."""
        return await self._request(method, path, params=params, body=body)

    # -- devices ----------------------------------------------------------------

    async def heartbeat(
        self,
        device_id: str,
        attributes: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> HeartbeatAck:
        """Report that ``device_id`` is alive, with its latest attributes and metrics."""
        body = Heartbeat(device_id, attributes, metrics).to_json()
        del body["device_id"]
        data = await self._request(
            "POST", f"/v1/devices/{_segment(device_id)}/heartbeat", body=body
        )
        return HeartbeatAck.from_json(data)

    async def heartbeats(self, items: Iterable[Heartbeat | str]) -> BatchResult:
        """Report many devices alive in one request (at most ``MAX_BATCH``); each
        item is a ``Heartbeat`` or a bare device id. Per-device refusals come back in
        the result, not as an exception."""
        batch = [Heartbeat(item) if isinstance(item, str) else item for item in items]
        if len(batch) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} heartbeats per batch, got {len(batch)}")
        data = await self._request(
            "POST", "/v1/heartbeats", body={"heartbeats": [hb.to_json() for hb in batch]}
        )
        return BatchResult.from_json(data)

    async def put_device(
        self,
        device_id: str,
        profile: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Device:
        """Register ``device_id``, or update its profile and labels if it exists."""
        body: dict[str, Any] = {}
        if profile is not None:
            body["profile"] = profile
        if labels is not None:
            body["labels"] = dict(labels)
        data = await self._request("PUT", f"/v1/devices/{_segment(device_id)}", body=body)
        return Device.from_json(data)

    async def get_device(self, device_id: str) -> Device:
        """The device and its presence; ``HubError`` with code ``not_found`` if unknown."""
        data = await self._request("GET", f"/v1/devices/{_segment(device_id)}")
        return Device.from_json(data)

    async def delete_device(self, device_id: str) -> None:
        """Forget ``device_id``; ``HubError`` with code ``not_found`` if unknown."""
        await self._request("DELETE", f"/v1/devices/{_segment(device_id)}")

    async def device_page(
        self,
        *,
        status: str | None = None,
        profile: str | None = None,
        label: tuple[str, str] | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> DevicePage:
        """One page of the device list, ordered by id; ``after`` is the previous
        page's ``next`` cursor."""
        _check_limit(limit)
        params = [("limit", str(limit))]
        if status is not None:
            params.append(("status", status))
        if profile is not None:
            params.append(("profile", profile))
        if label is not None:
            params.append(("label", f"{label[0]}:{label[1]}"))
        if after is not None:
            params.append(("after", after))
        data = await self._request("GET", "/v1/devices", params=params)
        return DevicePage.from_json(data)

    async def list_devices(
        self,
        status: str | None = None,
        profile: str | None = None,
        label: tuple[str, str] | None = None,
        limit: int = 100,
    ) -> AsyncGenerator[Device, None]:
        """Every device matching the filters, fetching pages of ``limit`` as needed."""
        cursor: str | None = None
        while True:
            page = await self.device_page(
                status=status, profile=profile, label=label, after=cursor, limit=limit
            )
            for device in page.devices:
                yield device
            if page.next is None:
                return
            if page.next == cursor:
                # A cursor that does not move would page forever.
                raise HubError(None, "bad_response", f"device list cursor {cursor!r} repeated")
            cursor = page.next

    async def events(self, after: int = 0, limit: int = 100) -> EventsPage:
        """Transitions with ``seq > after``, oldest first, at most ``limit``."""
        _check_limit(limit)
        if after < 0:
            raise ValueError(f"after must be >= 0, got {after}")
        params = [("after", str(after)), ("limit", str(limit))]
        data = await self._request("GET", "/v1/events", params=params)
        return EventsPage.from_json(data)

    # -- stream -----------------------------------------------------------------

    async def stream(
        self,
        after: int | None = None,
        devices: Iterable[str] = (),
        statuses: Iterable[str] = (),
        labels: Iterable[tuple[str, str]] = (),
        *,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        idle_timeout: float = STREAM_IDLE_TIMEOUT,
        on_retry: Callable[[HubError, float], None] | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """The live transition stream, resumed across disconnects.

        ``after`` replays history from that ``seq`` first (None: only what happens
        from now on). When the connection drops or the hub is unavailable, it
        reconnects after a backoff delay (``on_retry(error, delay)`` is told first),
        sending ``Last-Event-ID`` so no transition is missed. It gives up, raising
        the last ``HubError``, on an answer that retrying cannot fix (401, 404, ...)
        or after ``max_attempts`` consecutive failed connections (None: never).
        A ``reset`` frame means history needed to resume is gone: take a new
        snapshot with ``list_devices`` and carry on; the stream continues.

        Iterate it inside ``contextlib.aclosing(client.stream(...))`` so that leaving
        the loop early closes the connection at once.
        """
        resume = StreamResume(
            after=after, backoff=backoff or Backoff(), rng=self._rng, max_attempts=max_attempts
        )
        query = [("device", d) for d in devices]
        query += [("status", s) for s in statuses]
        query += [("label", f"{k}:{v}") for k, v in labels]
        timeout = httpx.Timeout(self._timeout, read=idle_timeout)
        async with aclosing(
            follow(self._http, self.url, resume, query, timeout=timeout, on_retry=on_retry)
        ) as events:
            async for event in events:
                yield event
