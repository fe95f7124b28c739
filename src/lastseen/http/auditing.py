"""Audit of device changes made through routes that do not know about auditing.

``PUT`` and ``DELETE /v1/devices/{id}`` are served by the device routes; this wraps
them: it keeps the first few KiB of the request body, and when the route answers
with success it writes the audit record (and, for a delete, revokes the device's
tokens) *before* the answer goes out. If the audit record cannot be written the
client gets 503 ``audit_failed`` instead of the route's answer: the change may have
happened, and the client is told it cannot be sure, never that all is well.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lastseen.errors import LastseenError
from lastseen.http.responses import error
from lastseen.security import Principal, Security

log = logging.getLogger("lastseen.audit")

#: The scope key under which the auth middleware leaves the request's ``Principal``
#: for the routes that record who did something.
PRINCIPAL = "lastseen.principal"

#: Bytes of a request body kept in its audit record.
AUDIT_BODY_LIMIT = 4096


def client_address(scope: Scope) -> str:
    """The client's address (after trusted-proxy resolution), for the audit log."""
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _details(method: str, status: int, body: bytes, truncated: bool) -> dict[str, Any]:
    if method != "PUT":
        return {}
    if truncated:
        return {"body_bytes": len(body), "truncated": True}
    try:
        parsed = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        return {"body_bytes": len(body)}
    return parsed if isinstance(parsed, dict) else {"body": parsed}


async def audited_device_write(
    app: ASGIApp,
    security: Security,
    principal: Principal,
    device_id: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    method: str = scope["method"]
    kept = bytearray()
    truncated = False
    failed = False

    async def keeping_receive() -> Message:
        nonlocal truncated
        message = await receive()
        if message["type"] == "http.request" and not truncated:
            chunk = message.get("body", b"")
            room = AUDIT_BODY_LIMIT - len(kept)
            kept.extend(chunk[:room])
            truncated = len(chunk) > room
        return message

    async def auditing_send(message: Message) -> None:
        nonlocal failed
        if failed:
            return  # the route's answer was replaced by audit_failed
        if message["type"] == "http.response.start" and message["status"] < 400:
            status: int = message["status"]
            try:
                details = _details(method, status, bytes(kept), truncated)
                if method == "DELETE":
                    action = "device.deleted"
                    details["tokens_revoked"] = await security.keyring.revoke_device(device_id)
                else:
                    action = "device.created" if status == 201 else "device.updated"
                await security.auditor.record(
                    principal.key_id, action, device_id, client_address(scope), details
                )
            except LastseenError as exc:
                failed = True
                log.error("event=audit_failed device=%s code=%s", device_id, exc.code)
                await error(
                    503,
                    "audit_failed",
                    "the change may have been made but its audit record "
                    "could not be written; check the device and retry",
                )(scope, receive, send)
                return
        await send(message)

    await app(scope, keeping_receive, auditing_send)
