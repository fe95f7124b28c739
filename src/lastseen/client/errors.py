"""Errors of the hub client, and their translation from ``httpx`` at the edge.

Callers of ``HubClient`` only ever see ``HubError`` (and so ``LastseenError``):
an HTTP error answer keeps the hub's machine-readable ``code`` and its ``message``;
a failure to get any answer at all is a ``HubUnavailable``.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from lastseen.errors import LastseenError, Unavailable

#: How much of an error body that is not the hub's JSON we quote in the message.
_SNIPPET = 200

#: Answers that say "not now" rather than "never": a proxy or the hub is overloaded or down.
_UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


class HubError(LastseenError):
    """The hub refused a request, or could not be talked to.

    ``status`` is the HTTP status of the answer, or None when there was none (the
    hub was unreachable, the URL was invalid). ``code`` is the hub's stable
    machine-readable code (``not_found``, ``invalid_input``, ...) or one of the
    client's own: ``unreachable``, ``timeout``, ``invalid_url``, ``bad_response``,
    ``bad_stream``, ``response_too_large``, ``http_<status>``.
    """

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later without any change."""
        if self.status is None:
            return False
        return self.status >= 500 or self.status in (408, 429)

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickling replays ``self.args`` (just the message), which does not
        # fit this constructor; multiprocessing and logging handlers pickle errors.
        return (type(self), (self.status, self.code, self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status!r}, {self.code!r}, {self.message!r})"


class HubUnavailable(HubError, Unavailable):
    """No usable answer: the hub is unreachable, timed out, or answered 502/503/504.

    Retrying later may work; ``HubClient.stream`` does so on its own.
    """

    @property
    def retryable(self) -> bool:
        return True


def from_transport_error(exc: httpx.HTTPError, url: str) -> HubError:
    """The ``HubError`` for an ``httpx`` exception raised while talking to ``url``."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol):
        return HubError(None, "invalid_url", f"invalid hub URL {url}: {detail}")
    if isinstance(exc, httpx.TimeoutException):
        return HubUnavailable(None, "timeout", f"hub at {url} did not answer in time: {detail}")
    if isinstance(exc, httpx.TransportError):
        return HubUnavailable(None, "unreachable", f"cannot reach hub at {url}: {detail}")
    if isinstance(exc, httpx.DecodingError):
        return HubError(None, "bad_response", f"undecodable answer from {url}: {detail}")
    return HubError(None, "http_error", f"request to {url} failed: {detail}")


def from_response(status: int, body: bytes, reason: str = "") -> HubError:
    """The ``HubError`` for an error answer (status >= 400) with ``body``.

    The hub answers ``{"code": ..., "message": ...}``; anything else (a proxy's HTML
    page, an empty body) still gives a usable message.
    """
    code = f"http_{status}"
    message = reason or "error"
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        code = parsed["code"]
        if isinstance(parsed.get("message"), str):
            message = parsed["message"]
    elif body:
        snippet = body[:_SNIPPET].decode("utf-8", errors="replace").strip()
        if snippet:
            message = f"{message}: {snippet}"
    cls = HubUnavailable if status in _UNAVAILABLE_STATUSES else HubError
    return cls(status, code, message)
