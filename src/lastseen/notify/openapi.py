"""The notification routes in the OpenAPI document (merged in by ``http/openapi.py``)."""

from __future__ import annotations

from typing import Any

from lastseen.notify import validate

_STATUSES = ["unknown", "online", "stale", "offline"]
_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ERROR, description)


_STRINGS = {"type": "array", "maxItems": validate.MAX_LIST}
_TARGET = {
    "devices": {**_STRINGS, "items": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$"}},
    "labels": {
        "type": "object",
        "maxProperties": 64,
        "propertyNames": {"pattern": "^[^:]{1,128}$"},
        "additionalProperties": {"type": "string", "maxLength": 256},
    },
    "profiles": {**_STRINGS, "items": {"type": "string", "minLength": 1, "maxLength": 128}},
}
_RULE_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
_FILTER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_TARGET,
        "transitions": {"type": "boolean"},
        "from": {**_STRINGS, "items": {"enum": _STATUSES}},
        "to": {**_STRINGS, "items": {"enum": _STATUSES}},
        "alerts": {"type": "boolean"},
        "rules": {**_STRINGS, "items": _RULE_NAME},
    },
}
_HEADERS = {
    "type": "object",
    "maxProperties": validate.MAX_HEADERS,
    "description": "Sent with every request; hop-by-hop, Host, Content-* and Lastseen-* "
    "names are refused",
    "propertyNames": {"pattern": "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"},
    "additionalProperties": {
        "type": "string",
        "maxLength": validate.MAX_HEADER_VALUE,
        "pattern": "^[\\x20-\\x7e]*$",
    },
}
_URL = {
    "type": "string",
    "maxLength": validate.MAX_URL,
    "pattern": "^https?://[A-Za-z0-9.-]+(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$",
    "description": "http or https; its host must resolve to public addresses unless "
    "--webhook-allow-private or webhook_allow says otherwise (403 otherwise)",
}
_WEBHOOK_FIELDS = {
    "url": _URL,
    "filter": _FILTER,
    "headers": _HEADERS,
    "format": {"enum": ["json", "slack"]},
    "description": {"type": "string", "maxLength": validate.MAX_DESCRIPTION},
    "enabled": {"type": "boolean"},
}
_TIME = {"type": "string", "format": "date-time"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
WEBHOOK = {
    "type": "object",
    "required": ["id", "url", "filter", "headers", "format", "enabled", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "filter": {"type": "object"},
        "headers": {"type": "object"},
        "format": {"enum": ["json", "slack"]},
        "description": {"type": "string"},
        "enabled": {"type": "boolean"},
        "created_at": _TIME,
        "updated_at": _TIME,
    },
}
DELIVERY = {
    "type": "object",
    "required": ["id", "event_id", "status", "attempts"],
    "properties": {
        "id": {"type": "integer"},
        "webhook_id": {"type": "string"},
        "event_id": {"type": "string"},
        "device_id": {"type": "string"},
        "status": {"enum": ["pending", "sending", "delivered", "dead"]},
        "attempts": {"type": "integer"},
        "created_at": _TIME,
        "next_at": _NULL_TIME,
        "delivered_at": _NULL_TIME,
        "last_status": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "last_response": {"type": ["string", "null"], "description": "First 1 KiB"},
    },
}
_SECONDS = {"type": "number", "exclusiveMinimum": 0, "maximum": validate.MAX_SECONDS}


def _rule_kind(kind: str, fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["kind", *required],
        "additionalProperties": False,
        "properties": {"kind": {"const": kind}, **fields, **_TARGET},
    }


RULE_BODY = {
    "oneOf": [
        _rule_kind("offline_for", {"duration": _SECONDS}, ["duration"]),
        _rule_kind("stale_for", {"duration": _SECONDS}, ["duration"]),
        _rule_kind(
            "flapping",
            {
                "count": {"type": "integer", "minimum": 1, "maximum": 1000},
                "window": _SECONDS,
                "quiet": _SECONDS,
            },
            ["count", "window"],
        ),
        _rule_kind("back_online", {}, []),
    ]
}
RULE = {"type": "object", "required": ["name", "kind", "source"]}
ALERT = {
    "type": "object",
    "required": ["id", "key", "rule", "device_id", "state", "opened_at"],
    "properties": {
        "id": {"type": "integer"},
        "key": {"type": "string"},
        "rule": {"type": "string"},
        "kind": {"type": "string"},
        "device_id": {"type": "string"},
        "state": {"enum": ["open", "resolved"]},
        "opened_at": _TIME,
        "resolved_at": _NULL_TIME,
        "reason": {"type": "string"},
    },
}


def paths(op: Any, query: Any, limit: dict[str, Any]) -> dict[str, Any]:
    """The paths; ``op`` and ``query`` are the main document's helpers."""
    webhook_id = {"name": "webhook_id", "in": "path", "required": True,
                  "schema": {"type": "string", "pattern": "^[^/]+$"}}  # fmt: skip
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[^/]+$"},
    }
    rule_name = {"name": "name", "in": "path", "required": True, "schema": _RULE_NAME}
    not_found = {"404": _err("No such webhook")}
    body = {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "properties": _WEBHOOK_FIELDS}}},
    }  # fmt: skip
    create_body = {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["url"], "additionalProperties": False,
            "properties": _WEBHOOK_FIELDS}}},
    }  # fmt: skip
    refused = {"403": _err("The key may not do this, or the URL's destination is refused")}
    replayed = _json(
        {
            "type": "object",
            "required": ["replayed"],
            "properties": {"replayed": {"type": "integer"}},
        },
        "How many deliveries are due again",
    )
    return {
        "/v1/webhooks": {
            "get": op(
                "Webhook subscriptions; never a secret (admin)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["webhooks"],
                            "properties": {"webhooks": {"type": "array", "items": WEBHOOK}},
                        },
                        "The webhooks",
                    )
                },
            ),
            "post": op(
                "Subscribe a URL; the signing secret is in this answer only (admin; audited)",
                {
                    "201": _json(
                        {**WEBHOOK, "required": [*WEBHOOK["required"], "secret"]},
                        "The webhook and its secret",
                    ),
                    **refused,
                },
                requestBody=create_body,
            ),
        },
        "/v1/webhooks/{webhook_id}": {
            "get": op(
                "One webhook (admin)",
                {"200": _json(WEBHOOK, "The webhook"), **not_found},
                parameters=[webhook_id],
            ),
            "patch": op(
                "Change the fields given (admin; audited)",
                {"200": _json(WEBHOOK, "The webhook"), **not_found, **refused},
                parameters=[webhook_id],
                requestBody=body,
            ),
            "put": op(
                "Replace every field (url required; admin; audited)",
                {"200": _json(WEBHOOK, "The webhook"), **not_found, **refused},
                parameters=[webhook_id],
                requestBody=create_body,
            ),
            "delete": op(
                "Remove a webhook and its queued deliveries (admin; audited)",
                {"200": _json({"type": "object"}, "Deleted"), **not_found},
                parameters=[webhook_id],
            ),
        },
        "/v1/webhooks/{webhook_id}/deliveries": {
            "get": op(
                "Deliveries, newest first (admin)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["deliveries"],
                            "properties": {"deliveries": {"type": "array", "items": DELIVERY}},
                        },
                        "A page",
                    ),
                    **not_found,
                },
                parameters=[
                    webhook_id,
                    query(
                        "status",
                        {"enum": ["pending", "sending", "delivered", "dead"]},
                        "Only this status",
                    ),
                    limit,
                ],
            ),
        },
        "/v1/webhooks/{webhook_id}/replay": {
            "post": op(
                "Every dead delivery due again, with a fresh budget (admin; audited)",
                {"200": replayed, **not_found},
                parameters=[webhook_id],
            ),
        },
        "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay": {
            "post": op(
                "A dead or delivered delivery sent again (admin; audited)",
                {
                    "200": replayed,
                    "404": _err("No such webhook or delivery"),
                    "409": _err("The delivery is still pending"),
                },
                parameters=[
                    webhook_id,
                    {
                        "name": "delivery_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[^/]+$"},
                    },
                ],
            ),
        },
        "/v1/alert-rules": {
            "get": op(
                "Alert rules, from the config file and the API (admin)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["rules"],
                            "properties": {"rules": {"type": "array", "items": RULE}},
                        },
                        "The rules",
                    )
                },
            ),
        },
        "/v1/alert-rules/{name}": {
            "get": op(
                "One alert rule (admin)",
                {"200": _json(RULE, "The rule"), "404": _err("No such rule")},
                parameters=[name],
            ),
            "put": op(
                "Create or replace a rule (admin; audited)",
                {
                    "200": _json(RULE, "Replaced"),
                    "201": _json(RULE, "Created"),
                    "409": _err("The rule is defined in the config file"),
                },
                parameters=[rule_name],
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": RULE_BODY}},
                },
            ),
            "delete": op(
                "Remove a rule; its open alerts resolve (admin; audited)",
                {
                    "200": _json({"type": "object"}, "Deleted"),
                    "404": _err("No such rule"),
                    "409": _err("The rule is defined in the config file"),
                },
                parameters=[name],
            ),
        },
        "/v1/alerts": {
            "get": op(
                "Alerts, newest first (admin)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["alerts"],
                            "properties": {"alerts": {"type": "array", "items": ALERT}},
                        },
                        "A page",
                    )
                },
                parameters=[
                    query("state", {"enum": ["open", "resolved"]}, "Only this state"),
                    limit,
                ],
            ),
        },
    }
