"""The OpenAPI 3.1 description of the HTTP API, served at /openapi.json and /docs."""

from __future__ import annotations

import html
from typing import Any

from lastseen import __version__

_ID = {"type": "string", "pattern": r"^[A-Za-z0-9._:@-]{1,128}$"}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_STATUS = {"type": "string", "enum": ["unknown", "online", "stale", "offline"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "Invalid input; nothing changed"),
    "401": _json(_ref("Error"), "Missing or invalid API key"),
    "413": _json(_ref("Error"), "Body too large"),
    "503": _json(_ref("Error"), "The store did not confirm in time"),
}
_DEVICE_ID_PARAM = {"name": "device_id", "in": "path", "required": True, "schema": _ID}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_HEARTBEAT_PROPERTIES: dict[str, Any] = {
    "attributes": {"type": "object", "maxProperties": 256},
    "metrics": {"type": "object", "maxProperties": 256, "additionalProperties": {"type": "number"}},
}
_HEARTBEAT_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "attributes": {"type": "object", "maxProperties": 256},
        "metrics": {
            "type": "object",
            "maxProperties": 256,
            "additionalProperties": {"type": "number"},
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
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
            "profile": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "attributes": {"type": "object"},
            "metrics": {"type": "object"},
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
}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**responses, **_ERRORS}, **extra}


def spec() -> dict[str, Any]:
    events_page = {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {"type": "array", "items": _ref("Event")},
            "first_seq": {"type": "integer"},
            "last_seq": {"type": "integer"},
        },
    }
    paging = [
        _query("after", {"type": "integer", "minimum": 0}, "Only events with a greater seq"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size"),
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lastseen",
            "version": __version__,
            "description": "Real-time device presence: which devices are online, since when, why.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/v1/devices/{device_id}/heartbeat": {
                "post": _op(
                    "A sign of life from a device",
                    {"200": _json(_ref("HeartbeatResponse"), "Current presence")},
                    parameters=[_DEVICE_ID_PARAM],
                    requestBody={
                        "required": False,
                        "content": {"application/json": {"schema": _HEARTBEAT_BODY}},
                    },
                )
            },
            "/v1/heartbeats": {
                "post": _op(
                    "A batch of heartbeats (a gateway's)",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["accepted", "rejected", "results"],
                                "properties": {
                                    "accepted": {"type": "integer"},
                                    "rejected": {"type": "integer"},
                                    "results": {"type": "array"},
                                },
                            },
                            "Per-item results, in order",
                        )
                    },
                    requestBody={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["heartbeats"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "heartbeats": {
                                            "type": "array",
                                            "maxItems": 1000,
                                            "items": {
                                                **_HEARTBEAT_BODY,
                                                "required": ["device_id"],
                                                "properties": {
                                                    **_HEARTBEAT_PROPERTIES,
                                                    "device_id": _ID,
                                                },
                                            },
                                        }
                                    },
                                }
                            }
                        },
                    },
                )
            },
            "/v1/devices": {
                "get": _op(
                    "List devices (current presence)",
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
                        _query("label", {"type": "string"}, "key:value"),
                        _query("after", _ID, "Cursor: the previous page's next"),
                        _query(
                            "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size"
                        ),
                    ],
                )
            },
            "/v1/devices/{device_id}": {
                "parameters": [_DEVICE_ID_PARAM],
                "get": _op(
                    "One device",
                    {
                        "200": _json(_ref("Device"), "The device"),
                        "404": _json(_ref("Error"), "Unknown device"),
                    },
                ),
                "put": _op(
                    "Register or update a device",
                    {
                        "200": _json(_ref("Device"), "Updated"),
                        "201": _json(_ref("Device"), "Created"),
                    },
                    requestBody={
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "profile": {"type": "string"},
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                }
                            }
                        },
                    },
                ),
                "delete": _op(
                    "Remove a device (its history stays)",
                    {
                        "204": {"description": "Removed"},
                        "404": _json(_ref("Error"), "Unknown device"),
                    },
                ),
            },
            "/v1/devices/{device_id}/transitions": {
                "get": _op(
                    "A device's transition history",
                    {
                        "200": _json(events_page, "Events in seq order"),
                        "404": _json(_ref("Error"), "Unknown device"),
                    },
                    parameters=[_DEVICE_ID_PARAM, *paging],
                ),
            },
            "/v1/events": {
                "get": _op(
                    "The fleet's transitions in seq order",
                    {"200": _json(events_page, "Events in seq order")},
                    parameters=paging,
                ),
            },
            "/v1/stream": {
                "get": _op(
                    "Server-Sent Events: transitions, seen, device, reset",
                    {"200": {"description": "text/event-stream"}},
                    parameters=[*paging[:1]],
                ),
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness and facts",
                    "security": [],
                    "responses": {"200": {"description": "OK"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness",
                    "security": [],
                    "responses": {
                        "200": {"description": "Ready"},
                        "503": {"description": "Not ready"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": [],
                    "responses": {"200": {"description": "text/plain"}},
                }
            },
        },
    }


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
        "<style>body{font:15px system-ui;margin:2rem;max-width:60rem}"
        "td{padding:.3rem .8rem;border-bottom:1px solid #ccc}</style>"
        f"<h1>lastseen API {html.escape(__version__)}</h1>"
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a>. "
        'Errors are <code>{"code", "message"}</code>.</p>'
        f"<table>{''.join(rows)}</table></html>"
    )
