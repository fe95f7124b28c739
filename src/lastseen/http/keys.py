"""Credentials: API keys (``/v1/keys``) and per-device tokens (``/v1/devices/{id}/token``).

Admin only (see ``lastseen.security.permissions``). A secret is in the answer that
creates it and nowhere else, ever: the hub keeps only its digest. Every change is
audited before it is answered.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lastseen.errors import InvalidInput
from lastseen.http import validation as v
from lastseen.http.auditing import PRINCIPAL, client_address
from lastseen.http.responses import JSONResponse
from lastseen.hub.api import HubAPI
from lastseen.hub.core import check_device_id
from lastseen.security import Principal, Role, Security
from lastseen.security.keyring import parse_role
from lastseen.store import KeyRecord
from lastseen.timefmt import rfc3339, rfc3339_or_none

_KEY_FIELDS = frozenset({"role", "name", "max_per_minute"})
_TOKEN_FIELDS = frozenset({"name", "max_per_minute"})


def key_json(record: KeyRecord) -> dict[str, Any]:
    """A key as the API shows it: everything but the digest."""
    return {
        "id": record.id,
        "role": record.role,
        "name": record.name,
        "device_id": record.device_id,
        "max_per_minute": record.max_per_minute,
        "created_at": rfc3339(record.created_at),
        "created_by": record.created_by,
        "revoked_at": rfc3339_or_none(record.revoked_at),
        "active": record.active,
    }


def _security(request: Request) -> Security:
    security: Security = request.app.state.security
    return security


def actor(request: Request) -> Principal:
    """Who is making this request (put in the scope by the auth middleware)."""
    principal: Principal = request.scope[PRINCIPAL]
    return principal


def _rate(body: dict[str, Any]) -> int:
    value = body.get("max_per_minute", 0)
    # JSON has one number type: 60.0 is the integer 60 (as JSON Schema says too).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
        raise InvalidInput("max_per_minute must be an integer 0-1000000", code="invalid_key")
    return value


def _name(body: dict[str, Any], default: str | None = None) -> str:
    name = body.get("name", default)
    if not isinstance(name, str):
        raise InvalidInput("name must be a string", code="invalid_key")
    return name


async def list_keys(request: Request) -> Response:
    keys = _security(request).keyring.listing()
    return JSONResponse({"keys": [key_json(record) for record in keys]})


async def create_key(request: Request) -> Response:
    hub: HubAPI = request.app.state.hub
    security = _security(request)
    body = v.require_object(await v.read_json(request, hub.settings.max_body), "key body")
    v.refuse_unknown(body, _KEY_FIELDS, "key body")
    role = parse_role(body.get("role"))
    who = actor(request)
    created = await security.keyring.create(
        role, _name(body), created_by=who.key_id, max_per_minute=_rate(body)
    )
    assert created is not None  # only_if_none was not asked for
    record, secret = created
    await security.auditor.record(
        who.key_id,
        "key.created",
        record.id,
        client_address(request.scope),
        {"role": record.role, "name": record.name},
    )
    return JSONResponse({**key_json(record), "secret": secret}, status_code=201)


async def revoke_key(request: Request) -> Response:
    security = _security(request)
    key_id = request.path_params["key_id"]
    record = await security.keyring.revoke(key_id)
    await security.auditor.record(
        actor(request).key_id,
        "key.revoked",
        record.id,
        client_address(request.scope),
        {"role": record.role, "name": record.name},
    )
    return JSONResponse(key_json(record))


async def issue_token(request: Request) -> Response:
    """A new token for one device (registering the device if it is new); the
    device's previous tokens are revoked, so this is also how a token is rotated."""
    hub: HubAPI = request.app.state.hub
    security = _security(request)
    device_id = check_device_id(request.path_params["device_id"])
    body = await v.read_json(request, hub.settings.max_body, allow_empty=True)
    body = v.require_object(body if body is not None else {}, "token body")
    v.refuse_unknown(body, _TOKEN_FIELDS, "token body")
    name = _name(body, f"device {device_id}")
    rate = _rate(body)
    who = actor(request)
    source = client_address(request.scope)
    created = not await hub.knows(device_id)
    if created:
        await hub.put_device(device_id)
        await security.auditor.record(who.key_id, "device.created", device_id, source, {})
    revoked = await security.keyring.revoke_device(device_id)
    issued = await security.keyring.create(
        Role.DEVICE, name, created_by=who.key_id, device_id=device_id, max_per_minute=rate
    )
    assert issued is not None
    record, secret = issued
    await security.auditor.record(
        who.key_id, "token.issued", device_id, source, {"key_id": record.id, "revoked": revoked}
    )
    return JSONResponse(
        {"device_id": device_id, "token": key_json(record), "secret": secret, "revoked": revoked},
        status_code=201,
    )


routes = [
    Route("/v1/keys", list_keys, methods=["GET"]),
    Route("/v1/keys", create_key, methods=["POST"]),
    Route("/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/v1/devices/{device_id}/token", issue_token, methods=["POST"]),
]
