"""Bearer-key authentication for the API (pure ASGI, so it guards WebSockets too).

With no admin key configured the hub is open (embedded trial mode, said plainly in
/healthz). Keys are compared in constant time. ``?token=`` is accepted on the
stream routes only, because browsers' EventSource cannot send headers; elsewhere a
key in a URL would end up in access logs.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from lastseen.http.responses import error

_STREAM_PATHS = frozenset({"/v1/stream", "/v1/ws"})


class BearerAuth:
    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app = app
        self.key = key.encode() if key else None

    def _token(self, scope: Scope) -> bytes | None:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    return bytes(token.strip())
        if scope["path"] in _STREAM_PATHS:
            tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
            if tokens:
                return str(tokens[0]).encode()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.key is None
            or scope["type"] not in ("http", "websocket")
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        token = self._token(scope)
        if token is not None and hmac.compare_digest(token, self.key):
            await self.app(scope, receive, send)
            return
        hub = scope["app"].state.hub if "app" in scope else None
        if hub is not None:
            hub.metrics.rejected.inc(1.0, "unauthorized")
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
            return
        response = error(
            401,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
