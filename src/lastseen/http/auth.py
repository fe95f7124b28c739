"""The API's gate: who is asking, may they, and not too often (pure ASGI, so it
guards WebSockets too and the heartbeat hot path pays only for what it uses).

For every ``/v1`` request, in order:

1. **authenticate**: ``Authorization: Bearer <key>``, or ``?token=<key>`` on the
   stream routes only (browsers' EventSource cannot send headers; anywhere else a
   key in a URL would end up in access logs). One dict lookup, one SHA-256, no SQL.
   With ``--open`` every request acts as the admin-like ``open`` principal.
2. **authorise**: the route table in ``lastseen.security.permissions``.
3. **rate-limit** the key, then, for a heartbeat, the device (its profile's
   ``min_interval`` / ``max_per_minute``). A device over its limit is still alive:
   its liveness is recorded (``hub.heartbeat`` without payload, for a known device
   only, so a flood cannot register ids) and the answer is 429 with ``Retry-After``.
4. hand on: batches through ``BatchFilter`` when per-item rules apply, streams with
   their owner recorded (revoking the key closes them), device changes audited.

Refusals are ``{"code", "message"}`` answers counted in ``lastseen_rejected_total``;
a WebSocket is refused by closing it with 1008 (policy violation) before accepting.
"""

from __future__ import annotations

import contextlib
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lastseen.errors import InvalidInput, LastseenError
from lastseen.http.auditing import PRINCIPAL, audited_device_write
from lastseen.http.responses import error
from lastseen.http.throttle import BatchFilter, Rates
from lastseen.http.validation import repeated_parameter
from lastseen.hub.api import HubAPI
from lastseen.hub.core import DEVICE_ID
from lastseen.security import (
    OPEN_PRINCIPAL,
    Forbidden,
    Kind,
    Principal,
    Rate,
    RateLimited,
    Role,
    Security,
    Unauthorized,
    allows,
    classify,
)
from lastseen.security.streams import OWNER

_STREAM_PATHS = frozenset({"/v1/stream", "/v1/ws"})
CLOSE_POLICY = 1008
#: Seconds a client refused for too many open streams should wait.
_STREAMS_RETRY = 5.0


def _secret(scope: Scope, path: str) -> bytes | None:
    value: bytes
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else None
    if path in _STREAM_PATHS:
        query: bytes = scope.get("query_string", b"")
        tokens = parse_qs(query.decode("latin-1")).get("token")
        if tokens:
            return tokens[0].encode()
    return None


def _forbidden(principal: Principal, kind: Kind) -> Forbidden:
    if principal.role is Role.DEVICE:
        return Forbidden(
            "a device token may only send heartbeats for its own device and read that device"
        )
    return Forbidden(f"a {principal.role.value} key may not do this ({kind.value} request)")


class Guard:
    """The ASGI middleware applying ``security`` to every ``/v1`` request of ``hub``."""

    def __init__(self, app: ASGIApp, hub: HubAPI, security: Security) -> None:
        self.app = app
        self.hub = hub
        self.security = security
        self.keyring = security.keyring
        self.open = security.open
        settings = hub.settings
        self.ingest_register = settings.ingest_register
        self.max_streams = settings.max_streams_per_key
        self.rates = Rates(hub.profiles)
        self.batches = BatchFilter(app, hub, security, self.rates)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        # Only the rate limiters are awaited, and only when a rate applies: an
        # unlimited heartbeat passes with plain function calls and dict lookups.
        try:
            principal, kind, device_id = self._authorize(scope)
            if principal.rate is not None:
                await self._limit_key(principal, kind, device_id)
            if kind is Kind.HEARTBEAT:
                rate = await self._device_rate(principal, device_id)
                if rate is not None and device_id is not None:
                    await self._limit_device(device_id, rate)
            elif kind is Kind.STREAM:
                self._check_streams(principal)
        except LastseenError as exc:
            await self.refuse(scope, receive, send, exc)
            return
        if kind is Kind.HEARTBEAT:
            await self.app(scope, receive, send)
        elif kind is Kind.ADMIN:
            scope[PRINCIPAL] = principal
            await self.app(scope, receive, send)
        elif kind is Kind.BATCH:
            await self.batches(principal, scope, receive, send, self.refuse)
        elif kind is Kind.STREAM:
            token = OWNER.set(principal.key_id)
            try:
                await self.app(scope, receive, send)
            finally:
                OWNER.reset(token)
        elif kind is Kind.DEVICE_WRITE and device_id is not None:
            await audited_device_write(
                self.app, self.security, principal, device_id, scope, receive, send
            )
        else:
            await self.app(scope, receive, send)

    def _authorize(self, scope: Scope) -> tuple[Principal, Kind, str | None]:
        """Who is asking, and may they: pure lookups, no I/O."""
        path: str = scope["path"]
        if self.open:
            principal = OPEN_PRINCIPAL
        else:
            secret = _secret(scope, path)
            found = self.keyring.lookup(secret) if secret else None
            if found is None:
                raise Unauthorized("a valid API key is required (Authorization: Bearer <key>)")
            principal = found
        kind, device_id = classify(scope.get("method", "GET"), path)
        if not allows(principal, kind, device_id):
            raise _forbidden(principal, kind)
        query: bytes = scope.get("query_string", b"")
        if query and kind is not Kind.STREAM:
            repeated = repeated_parameter(query)
            if repeated is not None:
                raise InvalidInput(
                    f"query parameter {repeated!r} given more than once",
                    code="invalid_parameter",
                )
        return principal, kind, device_id

    async def _limit_key(self, principal: Principal, kind: Kind, device_id: str | None) -> None:
        assert principal.rate is not None
        wait = await self.security.key_limiter.acquire(principal.key_id, principal.rate)
        if wait:
            if kind is Kind.HEARTBEAT and device_id is not None:
                await self._liveness(device_id)
            raise RateLimited(f"too many requests with key {principal.key_id}", wait)

    async def _device_rate(self, principal: Principal, device_id: str | None) -> Rate | None:
        """The device's rate (from its profile); refuses registration when not allowed."""
        hub = self.hub
        restrict = principal.role is Role.INGEST and not self.ingest_register
        if not (restrict or self.rates.any):
            # No profile limits anything and registration is allowed: nothing to look up
            # (a shared hub would pay a round trip for it).
            return None
        profile = await hub.profile_of(device_id) if device_id is not None else None
        if profile is not None:
            rate = self.rates.get(profile)
        else:
            if restrict:
                raise Forbidden(
                    f"no device {device_id!r}, and this key may not register devices",
                    code="registration_forbidden",
                )
            rate = self.rates.get(hub.profiles.default)
        # An invalid id is left to the route (400); it must not become a limiter key.
        if rate is None or device_id is None or DEVICE_ID.fullmatch(device_id) is None:
            return None
        return rate

    async def _limit_device(self, device_id: str, rate: Rate) -> None:
        wait = await self.security.device_limiter.acquire(device_id, rate)
        if wait:
            await self._liveness(device_id)
            raise RateLimited(
                f"device {device_id!r} sends more often than its profile allows; "
                "its liveness was recorded, its payload was not",
                wait,
            )

    def _check_streams(self, principal: Principal) -> None:
        if not self.open and self.security.owners.count(principal.key_id) >= self.max_streams:
            raise RateLimited(
                f"key {principal.key_id} already has {self.max_streams} open streams",
                _STREAMS_RETRY,
                code="too_many_streams",
            )

    async def _liveness(self, device_id: str) -> None:
        """A throttled device is still alive: record that cheaply, payload dropped."""
        if not await self.hub.knows(device_id):
            return
        # Deleted meanwhile, or the store is slow: either way the 429 stands.
        with contextlib.suppress(LastseenError):
            await self.hub.heartbeat(device_id, register=False)

    async def refuse(self, scope: Scope, receive: Receive, send: Send, exc: LastseenError) -> None:
        """Answer a refusal made before the app ran."""
        self.hub.metrics.rejected.inc(1.0, exc.code)
        if scope["type"] == "websocket":
            message: Message = {"type": "websocket.close", "code": CLOSE_POLICY, "reason": exc.code}
            await send(message)
            return
        headers: dict[str, str] = {}
        if exc.http_status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = exc.retry_after_header
        await error(exc.http_status, exc.code, exc.message, headers)(scope, receive, send)
