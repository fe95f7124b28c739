"""The OpenAPI 3.1 description of the HTTP API, served at /openapi.json and /docs.

It is tested, not just written: tests/fuzz/test_openapi.py sends schemathesis-
generated requests to every operation and requires each answer to match what is
described here, and every schema-valid request to be accepted. So the schemas say
exactly what the hub accepts: the attribute limits of ``validation``, the configured
profiles, label rules, and that an empty query parameter means "not given".
"""

from __future__ import annotations

import html
from typing import Any

from lastseen import __version__
from lastseen.http import validation as v
from lastseen.notify.openapi import paths as notify_paths
from lastseen.settings import Settings
from lastseen.uptime import WINDOW_PATTERN

_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
_ID = {"type": "string", "pattern": _ID_PATTERN}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_STATUSES = ["unknown", "online", "stale", "offline"]
_STATUS = {"type": "string", "enum": _STATUSES}
_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": "^[^\\u0000-\\u001f\\u007f]*$",
    "description": "1-128 characters, no control characters",
}
_RATE = {"type": "integer", "minimum": 0, "maximum": 1_000_000}
_LABELS = {
    "type": "object",
    "maxProperties": v.MAX_LABELS,
    "propertyNames": {"pattern": f"^[^:]{{1,{v.MAX_KEY_LENGTH}}}$"},
    "additionalProperties": {"type": "string", "maxLength": v.MAX_LABEL_LENGTH},
}
_METRICS = {
    "type": "object",
    "maxProperties": v.MAX_KEYS,
    "propertyNames": {"maxLength": v.MAX_KEY_LENGTH},
    "additionalProperties": {"type": "number"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _attribute_levels() -> dict[str, Any]:
    """``AttributeValue0`` .. ``AttributeValue<MAX_DEPTH - 1>``: a JSON value whose
    containers nest at most that many levels further (JSON Schema cannot count depth
    any other way)."""
    scalars: list[dict[str, Any]] = [
        {"type": "string", "maxLength": v.MAX_STRING},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ]
    levels: dict[str, Any] = {"AttributeValue0": {"anyOf": scalars}}
    for level in range(1, v.MAX_DEPTH):
        inner = _ref(f"AttributeValue{level - 1}")
        levels[f"AttributeValue{level}"] = {
            "anyOf": [
                *scalars,
                {"type": "array", "maxItems": v.MAX_ITEMS, "items": inner},
                {
                    "type": "object",
                    "maxProperties": v.MAX_KEYS,
                    "propertyNames": {"maxLength": v.MAX_KEY_LENGTH},
                    "additionalProperties": inner,
                },
            ]
        }
    return levels


_ATTRIBUTES = {
    "type": "object",
    "description": (
        f"Any JSON object: at most {v.MAX_DEPTH} levels deep, {v.MAX_KEYS} keys per object, "
        f"{v.MAX_ITEMS} items per array, {v.MAX_KEY_LENGTH} characters per key, "
        f"{v.MAX_STRING} per string and {v.MAX_VALUES} values in all. Merged into the "
        "device's attributes. Times in here are data: the hub orders by its own clock."
    ),
    "maxProperties": v.MAX_KEYS,
    "propertyNames": {"maxLength": v.MAX_KEY_LENGTH},
    # The object is depth 1, so its values may nest MAX_DEPTH - 1 levels further.
    "additionalProperties": _ref(f"AttributeValue{v.MAX_DEPTH - 1}"),
}
_HEARTBEAT_PROPERTIES: dict[str, Any] = {"attributes": _ATTRIBUTES, "metrics": _METRICS}


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {**_json(_ref("Error"), description), **extra}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until a request would be accepted",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
#: Answers every ``/v1`` operation may give.
_API_ERRORS = {
    "400": _error("Invalid input; nothing changed"),
    "401": _error("Missing or invalid API key"),
    "403": _error("The key may not do this"),
    "413": _error("Body too large"),
    "429": _error("Rate limited (the key or the device)", headers=_RETRY_AFTER),
    "503": _error("The store did not confirm in time, or the audit log failed"),
}
#: An id containing ``/`` (or empty) addresses another route, or none.
_ROUTING_ERRORS = {
    "404": _error("Unknown device, or no such route"),
    "405": _error("The id made the path another route's"),
}
_DEVICE_ID_PARAM = {"name": "device_id", "in": "path", "required": True, "schema": _ID}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    # An empty value (``?status=``) is the same as leaving the parameter out; a schema
    # that already admits "" (any string) says so by itself.
    if set(schema) != {"type"}:
        schema = {"anyOf": [schema, {"const": ""}]}
        description += " (empty: not given)"
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


# Query integers are canonical decimal strings (see ``validation.int_param``).
_PAGE_SIZE = {"type": "string", "pattern": "^(1000|[1-9][0-9]{0,2})$", "description": "1-1000"}
_COUNT = {"type": "string", "pattern": f"^(0|[1-9][0-9]{{0,{v.MAX_DIGITS - 1}}})$"}
_LIMIT = _query("limit", _PAGE_SIZE, "Page size")
_PAGING = [_query("after", _COUNT, "Only greater seqs"), _LIMIT]
_WINDOW = _query(
    "window",
    {"type": "string", "pattern": WINDOW_PATTERN},
    "Seconds, or a number ending in s, m, h or d: 1h, 24h, 7d, 30d (default 24h)",
)
_UPTIME_COMMON: dict[str, Any] = {
    "window": {"type": "number", "description": "Seconds"},
    "start": _TIME,
    "end": _TIME,
    "fractions": _ref("StatusNumbers"),
    "seconds": _ref("StatusNumbers"),
    "transitions": {"type": "integer", "minimum": 0},
    "complete": {"type": "boolean", "description": "False if the history read was capped"},
}
_UPTIME_REQUIRED = ["window", "start", "end", "fractions", "seconds", "transitions", "complete"]


def _schemas(profiles: list[str]) -> dict[str, Any]:
    key = {
        "type": "object",
        "required": ["id", "role", "name", "created_at", "active"],
        "properties": {
            "id": {"type": "string"},
            "role": {"type": "string", "enum": ["admin", "read", "ingest", "device"]},
            "name": {"type": "string"},
            "device_id": {"type": ["string", "null"]},
            "max_per_minute": {"type": "integer"},
            "created_at": _TIME,
            "created_by": {"type": "string"},
            "revoked_at": _NULLABLE_TIME,
            "active": {"type": "boolean"},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "additionalProperties": False,
        },
        "Device": {
            "type": "object",
            "required": ["id", "status", "status_since", "last_seen", "reason", "profile"],
            "properties": {
                "id": _ID,
                "status": _STATUS,
                "status_since": _TIME,
                "last_seen": _NULLABLE_TIME,
                "reason": {"type": ["string", "null"]},
                "source": {"type": ["string", "null"]},
                "profile": {"type": "string", "enum": profiles},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "attributes": {"type": "object"},
                "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                "flapping": {"type": "boolean"},
                "session": {"type": ["integer", "null"]},
                "created_at": _TIME,
                "next_deadline": _NULLABLE_TIME,
            },
        },
        "Event": {
            "type": "object",
            "required": ["seq", "device_id", "from", "to", "at", "reason", "source"],
            "properties": {
                "type": {"const": "transition"},
                "seq": {"type": "integer", "minimum": 1},
                "device_id": _ID,
                "from": _STATUS,
                "to": _STATUS,
                "at": _TIME,
                "reason": {"type": "string"},
                "source": {"type": "string"},
                "flapping": {"type": "boolean"},
            },
        },
        "HeartbeatResponse": {
            "type": "object",
            "required": ["device_id", "status", "next_heartbeat_in"],
            "properties": {
                "device_id": _ID,
                "status": _STATUS,
                "status_since": _TIME,
                "last_seen": _NULLABLE_TIME,
                "next_heartbeat_in": {"type": "number"},
                "pending_commands": {"type": "array"},
                "should_reconnect": {"type": "boolean"},
            },
        },
        "BatchResult": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["device_id", "status"],
                    "properties": {
                        "device_id": _ID,
                        "status": _STATUS,
                        "throttled": {
                            "const": True,
                            "description": "Over its rate: alive, payload not processed",
                        },
                    },
                },
                {
                    "type": "object",
                    "required": ["device_id", "error"],
                    "properties": {
                        "device_id": {"type": ["string", "null"]},
                        "error": _ref("Error"),
                    },
                },
            ]
        },
        "Key": key,
        "NewKey": {
            "allOf": [key],
            "required": ["secret"],
            "properties": {"secret": {"type": "string", "description": "Shown only now"}},
        },
        "AuditRecord": {
            "type": "object",
            "required": ["id", "at", "actor", "action", "target", "source", "details"],
            "properties": {
                "id": {"type": "integer"},
                "at": _TIME,
                "actor": {"type": "string", "description": "A key id, system, cli or open"},
                "actor_name": {"type": ["string", "null"]},
                "action": {"type": "string"},
                "target": {"type": "string"},
                "source": {"type": "string", "description": "Client address, or how"},
                "details": {"type": "object"},
            },
        },
        "StatusNumbers": {
            "type": "object",
            "required": _STATUSES,
            "properties": {status: {"type": "number", "minimum": 0} for status in _STATUSES},
            "additionalProperties": False,
        },
        **_attribute_levels(),
    }


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**_API_ERRORS, **responses}, **extra}


def _body(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _public(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "security": [], "responses": responses}


def spec(settings: Settings | None = None) -> dict[str, Any]:
    """The document for a hub with these settings (profiles and batch size vary)."""
    settings = settings or Settings()
    profiles = sorted(p.name for p in settings.profiles)
    events_page = {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {"type": "array", "items": _ref("Event")},
            "first_seq": {"type": "integer"},
            "last_seq": {"type": "integer"},
        },
    }
    batch_item = {
        "anyOf": [
            {
                "type": "object",
                "required": ["device_id"],
                "additionalProperties": False,
                "properties": {**_HEARTBEAT_PROPERTIES, "device_id": _ID},
            },
            {
                "description": "Anything else is refused item by item, in the results "
                "(the rest of the batch is still applied)"
            },
        ]
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lastseen",
            "version": __version__,
            "description": (
                "Real-time device presence: which devices are online, since when, why. "
                "Also: GET /v1/ws (WebSocket, same events as /v1/stream). "
                "Keys and roles: docs/security.md."
            ),
        },
        "components": {
            "schemas": _schemas(profiles),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "token": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "The key in the URL: stream routes only (EventSource)",
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/devices/{device_id}/heartbeat": {
                "post": _op(
                    "A sign of life from a device (roles: admin, ingest, its device token)",
                    {
                        "200": _json(_ref("HeartbeatResponse"), "Current presence"),
                        **_ROUTING_ERRORS,
                    },
                    parameters=[_DEVICE_ID_PARAM],
                    requestBody=_body(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": _HEARTBEAT_PROPERTIES,
                        },
                        required=False,
                    ),
                )
            },
            "/v1/heartbeats": {
                "post": _op(
                    "A batch of heartbeats, a gateway's (roles: admin, ingest)",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["accepted", "rejected", "results"],
                                "properties": {
                                    "accepted": {"type": "integer"},
                                    "rejected": {"type": "integer"},
                                    "throttled": {"type": "integer"},
                                    "results": {"type": "array", "items": _ref("BatchResult")},
                                },
                            },
                            "Per-item results, in the order sent",
                        )
                    },
                    requestBody=_body(
                        {
                            "type": "object",
                            "required": ["heartbeats"],
                            "additionalProperties": False,
                            "properties": {
                                "heartbeats": {
                                    "type": "array",
                                    "maxItems": settings.max_batch,
                                    "items": batch_item,
                                }
                            },
                        },
                        required=True,
                    ),
                )
            },
            "/v1/devices": {
                "get": _op(
                    "List devices with their presence (roles: admin, read)",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["devices", "seq", "next"],
                                "properties": {
                                    "devices": {"type": "array", "items": _ref("Device")},
                                    "seq": {"type": "integer"},
                                    "next": {"type": ["string", "null"]},
                                },
                            },
                            "A page of devices and the stream seq it reflects",
                        )
                    },
                    parameters=[
                        _query("status", _STATUS, "Only devices with this status"),
                        _query("profile", {"type": "string"}, "Only devices of this profile"),
                        _query(
                            "label",
                            {"type": "string", "pattern": "^[^:]+:[\\s\\S]*$"},
                            "Only devices with this label, key:value",
                        ),
                        _query("after", _ID, "Cursor: the previous page's next"),
                        _LIMIT,
                    ],
                )
            },
            "/v1/devices/{device_id}": {
                "parameters": [_DEVICE_ID_PARAM],
                "get": _op(
                    "One device (roles: admin, read, its device token)",
                    {"200": _json(_ref("Device"), "The device"), **_ROUTING_ERRORS},
                ),
                "put": _op(
                    "Register or update a device (admin; audited)",
                    {
                        "200": _json(_ref("Device"), "Updated"),
                        "201": _json(_ref("Device"), "Created"),
                        **_ROUTING_ERRORS,
                    },
                    requestBody=_body(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "profile": {"type": "string", "enum": profiles},
                                "labels": _LABELS,
                            },
                        },
                        required=False,
                    ),
                ),
                "delete": _op(
                    "Remove a device; its history stays, its tokens are revoked (admin; audited)",
                    {"204": {"description": "Removed"}, **_ROUTING_ERRORS},
                ),
            },
            "/v1/devices/{device_id}/token": {
                "post": _op(
                    "Issue the device's token, replacing any previous one; registers the "
                    "device if new (admin; audited)",
                    {
                        "201": _json(
                            {
                                "type": "object",
                                "required": ["device_id", "token", "secret", "revoked"],
                                "properties": {
                                    "device_id": _ID,
                                    "token": _ref("Key"),
                                    "secret": {"type": "string", "description": "Shown once"},
                                    "revoked": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                            "The new token",
                        ),
                        **_ROUTING_ERRORS,
                    },
                    parameters=[_DEVICE_ID_PARAM],
                    requestBody=_body(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": _NAME, "max_per_minute": _RATE},
                        },
                        required=False,
                    ),
                )
            },
            "/v1/devices/{device_id}/transitions": {
                "get": _op(
                    "A device's transition history (roles: admin, read, its device token)",
                    {"200": _json(events_page, "Events in seq order"), **_ROUTING_ERRORS},
                    parameters=[_DEVICE_ID_PARAM, *_PAGING],
                ),
            },
            "/v1/devices/{device_id}/uptime": {
                "get": _op(
                    "Time fractions per status over a window ending now, from the durable "
                    "history (roles: admin, read, its device token)",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["device_id", *_UPTIME_REQUIRED],
                                "properties": {"device_id": _ID, **_UPTIME_COMMON},
                            },
                            "The device's uptime",
                        ),
                        **_ROUTING_ERRORS,
                    },
                    parameters=[_DEVICE_ID_PARAM, _WINDOW],
                ),
            },
            "/v1/uptime": {
                "get": _op(
                    "The fleet's uptime: mean fractions over devices, total device-seconds "
                    "per status, current counts (roles: admin, read)",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["devices", "current", *_UPTIME_REQUIRED],
                                "properties": {
                                    "devices": {"type": "integer", "minimum": 0},
                                    "current": {
                                        "type": "object",
                                        "required": _STATUSES,
                                        "additionalProperties": {"type": "integer"},
                                    },
                                    **_UPTIME_COMMON,
                                },
                            },
                            "The fleet summary",
                        )
                    },
                    parameters=[_WINDOW],
                ),
            },
            "/v1/events": {
                "get": _op(
                    "The fleet's transitions in seq order (roles: admin, read)",
                    {"200": _json(events_page, "Events in seq order")},
                    parameters=_PAGING,
                ),
            },
            "/v1/stream": {
                "get": _op(
                    "Server-Sent Events: transition, seen, device, reset (roles: admin, read)",
                    {
                        "200": {
                            "description": "An endless event stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        }
                    },
                    parameters=[
                        _PAGING[0],
                        _query("device", _ID, "Only this device (repeatable)"),
                        _query("status", _STATUS, "Only transitions from or to (repeatable)"),
                        _query("label", {"type": "string"}, "key:value (repeatable)"),
                    ],
                    security=[{"bearer": []}, {"token": []}],
                ),
            },
            "/v1/keys": {
                "get": _op(
                    "API keys, revoked ones included; never a secret (admin)",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["keys"],
                                "properties": {"keys": {"type": "array", "items": _ref("Key")}},
                            },
                            "The keys",
                        )
                    },
                ),
                "post": _op(
                    "Create a key; its secret is in this answer only (admin; audited)",
                    {"201": _json(_ref("NewKey"), "The key and its secret")},
                    requestBody=_body(
                        {
                            "type": "object",
                            "required": ["role", "name"],
                            "additionalProperties": False,
                            "properties": {
                                "role": {"type": "string", "enum": ["admin", "read", "ingest"]},
                                "name": _NAME,
                                "max_per_minute": _RATE,
                            },
                        },
                        required=True,
                    ),
                ),
            },
            "/v1/keys/{key_id}": {
                "delete": _op(
                    "Revoke a key: refused from the next request, its streams closed "
                    "(admin; audited)",
                    {
                        "200": _json(_ref("Key"), "The revoked key"),
                        "404": _error("No such key"),
                        "409": _error("The environment's key, or the last admin key"),
                    },
                    parameters=[
                        {
                            "name": "key_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[^/]+$"},
                        }
                    ],
                ),
            },
            "/v1/audit": {
                "get": _op(
                    "The audit log of admin actions (admin)",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["records", "next"],
                                "properties": {
                                    "records": {
                                        "type": "array",
                                        "items": _ref("AuditRecord"),
                                    },
                                    "next": {
                                        "type": ["object", "null"],
                                        "description": "Query parameters of the next page",
                                    },
                                },
                            },
                            "A page of records",
                        )
                    },
                    parameters=[
                        _query("after", _COUNT, "Ids above"),
                        _query("before", _COUNT, "Ids below"),
                        _query("order", {"type": "string", "enum": ["asc", "desc"]}, "Id order"),
                        _LIMIT,
                    ],
                ),
            },
            **notify_paths(_op, _query, _LIMIT),
            "/healthz": {
                "get": _public(
                    "Liveness and facts, including how requests are authenticated",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["status", "version", "auth"],
                                "properties": {
                                    "status": {"enum": ["ok", "degraded"]},
                                    "version": {"type": "string"},
                                    "auth": {"enum": ["keys", "open"]},
                                    "warning": {"type": "string"},
                                },
                            },
                            "OK",
                        )
                    },
                )
            },
            "/readyz": {
                "get": _public(
                    "Readiness",
                    {
                        "200": _json({"type": "object"}, "Ready"),
                        "503": _json({"type": "object"}, "Not ready"),
                    },
                )
            },
            "/metrics": {
                "get": _public(
                    "Prometheus metrics",
                    {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                )
            },
        },
    }


#: The docs page's one inline style block; the CSP allows exactly it, by digest.
DOCS_STYLE = (
    "body{font:15px system-ui;margin:2rem;max-width:60rem}"
    "td{padding:.3rem .8rem;border-bottom:1px solid #ccc}"
)


def docs_page() -> str:
    """A self-contained HTML page listing the routes (no CDN, no scripts)."""
    rows = []
    for path, item in spec()["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                f"</code></td><td>{html.escape(op['summary'])}</td></tr>"
            )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>lastseen API</title>"
        f"<style>{DOCS_STYLE}</style>"
        f"<h1>lastseen API {html.escape(__version__)}</h1>"
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a>. "
        'Errors are <code>{"code", "message"}</code>. Authentication: '
        "<code>Authorization: Bearer &lt;key&gt;</code>.</p>"
        f"<table>{''.join(rows)}</table></html>"
    )
