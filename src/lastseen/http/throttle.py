"""Per-device rules inside a batch: rate limits and the ingest registration rule.

``POST /v1/heartbeats`` carries up to ``--max-batch`` devices, each with its own
profile and so its own rate. When a rule can apply (a profile has a rate, or the key
is an ingest key that may not register devices), ``BatchFilter`` reads the batch
once, before the route does, and

* drops items for unknown devices the key may not register: their result becomes
  ``{"device_id", "error": {"code": "registration_forbidden", ...}}``;
* strips the payload of items whose device is over its rate: the heartbeat still
  counts (the device is alive), its attributes and metrics are not processed, and
  its result carries ``"throttled": true``;

then hands the route the rewritten batch and splices those results back in, in the
order sent. Items it cannot judge (not an object, a bad id) pass through untouched
for the route to refuse in place. When no rule applies the batch is not touched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lastseen.errors import LastseenError
from lastseen.http.validation import read_body
from lastseen.hub.api import HubAPI
from lastseen.hub.core import DEVICE_ID
from lastseen.presence import Profile, ProfileRegistry
from lastseen.security import Principal, Rate, Role, Security

Refuse = Callable[[Scope, Receive, Send, LastseenError], Awaitable[None]]


class Rates:
    """Each profile's device rate, or None when it has none (the limiter is skipped)."""

    def __init__(self, profiles: ProfileRegistry) -> None:
        self._by_name: dict[str, Rate | None] = {}
        self.any = False
        for profile in profiles:
            self.get(profile)

    def get(self, profile: Profile) -> Rate | None:
        try:
            return self._by_name[profile.name]
        except KeyError:
            rate = Rate.of(profile.min_interval, profile.max_per_minute)
            self._by_name[profile.name] = rate
            self.any = self.any or rate is not None
            return rate


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then defers to the real one."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _with_length(scope: Scope, length: int) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
    headers.append((b"content-length", b"%d" % length))
    return {**scope, "headers": headers}


class BatchFilter:
    def __init__(self, app: ASGIApp, hub: HubAPI, security: Security, rates: Rates) -> None:
        self.app = app
        self.hub = hub
        self.security = security
        self.rates = rates
        self.ingest_register = hub.settings.ingest_register

    async def __call__(
        self, principal: Principal, scope: Scope, receive: Receive, send: Send, refuse: Refuse
    ) -> None:
        restrict = principal.role is Role.INGEST and not self.ingest_register
        if not (restrict or self.rates.any):
            await self.app(scope, receive, send)
            return
        try:
            raw = await read_body(scope, receive, self.hub.settings.max_body)
        except LastseenError as exc:
            await refuse(scope, receive, send, exc)
            return
        plan = await self._plan(raw, restrict)
        if plan is None:
            # Nothing to change (or not a batch the route will accept): as sent.
            await self.app(scope, _replay(raw, receive), send)
            return
        forwarded, removed, throttled, count = plan
        body = orjson.dumps({"heartbeats": forwarded})
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(_with_length(scope, len(body)), _replay(body, receive), capture)
        await self._answer(captured, removed, throttled, count, send)

    async def _plan(
        self, raw: bytes, restrict: bool
    ) -> tuple[list[Any], dict[int, dict[str, Any]], set[int], int] | None:
        try:
            envelope = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(envelope, dict) or set(envelope) != {"heartbeats"}:
            return None
        items = envelope["heartbeats"]
        if not isinstance(items, list) or len(items) > self.hub.settings.max_batch:
            return None
        hub = self.hub
        rejected = hub.metrics.rejected
        forwarded: list[Any] = []
        removed: dict[int, dict[str, Any]] = {}
        throttled: set[int] = set()
        for index, item in enumerate(items):
            device_id = item.get("device_id") if isinstance(item, dict) else None
            if not isinstance(device_id, str) or DEVICE_ID.fullmatch(device_id) is None:
                forwarded.append(item)
                continue
            profile = await hub.profile_of(device_id)
            if profile is None and restrict:
                rejected.inc(1.0, "registration_forbidden")
                removed[index] = {
                    "device_id": device_id,
                    "error": {
                        "code": "registration_forbidden",
                        "message": "unknown device, and this key may not register devices",
                    },
                }
                continue
            rate = self.rates.get(profile if profile is not None else hub.profiles.default)
            if rate is not None and await self.security.device_limiter.acquire(device_id, rate):
                rejected.inc(1.0, "rate_limited")
                throttled.add(index)
                forwarded.append({"device_id": device_id})
                continue
            forwarded.append(item)
        if not (removed or throttled):
            return None
        return forwarded, removed, throttled, len(items)

    async def _answer(
        self,
        captured: list[Message],
        removed: dict[int, dict[str, Any]],
        throttled: set[int],
        count: int,
        send: Send,
    ) -> None:
        start = captured[0] if captured else None
        body = b"".join(m.get("body", b"") for m in captured[1:])
        merged = None
        if start is not None and start.get("status") == 200:
            merged = self._merge(body, removed, throttled, count)
        if start is None or merged is None:
            for message in captured:
                await send(message)
            return
        headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
        headers.append((b"content-length", b"%d" % len(merged)))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": merged})

    @staticmethod
    def _merge(
        body: bytes, removed: dict[int, dict[str, Any]], throttled: set[int], count: int
    ) -> bytes | None:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != count - len(removed):
            return None
        answered = iter(results)
        merged: list[Any] = []
        for index in range(count):
            slot = removed.get(index)
            if slot is None:
                slot = next(answered)
                if index in throttled and isinstance(slot, dict):
                    slot = {**slot, "throttled": True}
            merged.append(slot)
        answer["results"] = merged
        answer["rejected"] = answer.get("rejected", 0) + len(removed)
        answer["throttled"] = len(throttled)
        return orjson.dumps(answer)
