"""Validating webhook and alert-rule bodies (API and config file). Changes nothing.

Every refusal is an ``InvalidInput`` with a stable code: ``invalid_webhook`` or
``invalid_alert_rule`` (the message names the field), ``unknown_field``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from lastseen.errors import InvalidInput
from lastseen.notify.models import AlertKind, AlertRule, Format, Target, WebhookFilter
from lastseen.presence import Status

RULE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DEVICE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
MAX_URL = 2048
MAX_HEADERS = 16
MAX_HEADER_VALUE = 1024
MAX_LIST = 256
MAX_DESCRIPTION = 256
#: Longest duration, window or quiet period of a rule, in seconds (a year).
MAX_SECONDS = 366 * 86400.0

#: Headers a subscription may not set: hop-by-hop (RFC 9110 §7.6.1), those the
#: transport computes, and the hub's own signature headers (a receiver must be able
#: to trust them). ``Authorization`` *is* allowed: it is how many receivers expect a
#: token, and the hub sends none of its own.
FORBIDDEN_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "expect",
    }
)
#: Header values shown masked when a subscription is read back.
SENSITIVE_HEADER = re.compile(r"authorization|cookie|token|secret|key|signature", re.I)

WEBHOOK_FIELDS = frozenset({"url", "filter", "headers", "format", "description", "enabled"})
FILTER_FIELDS = frozenset(
    {"devices", "labels", "profiles", "transitions", "from", "to", "alerts", "rules"}
)
RULE_FIELDS = frozenset(
    {"kind", "duration", "count", "window", "quiet", "devices", "labels", "profiles"}
)


def _bad(message: str, code: str) -> InvalidInput:
    return InvalidInput(message, code=code)


def refuse_unknown(body: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    for key in body:
        if key not in allowed:
            raise InvalidInput(f"unknown field {key!r} in {what}", code="unknown_field")


def _strings(
    value: Any, what: str, code: str, pattern: re.Pattern[str] | None = None
) -> frozenset[str]:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise _bad(f"{what} must be a list of at most {MAX_LIST} strings", code)
    for item in value:
        if not isinstance(item, str) or (pattern is not None and not pattern.fullmatch(item)):
            raise _bad(f"{what}: invalid item {item!r}", code)
        if pattern is None and not 1 <= len(item) <= 128:
            raise _bad(f"{what}: items must be 1-128 characters", code)
    return frozenset(value)


def _labels(value: Any, code: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or len(value) > 64:
        raise _bad("labels must be an object of at most 64 string values", code)
    for key, text in value.items():
        if not key or len(key) > 128 or ":" in key or not isinstance(text, str) or len(text) > 256:
            raise _bad(f"label {key!r}: key 1-128 chars without ':', value a string <= 256", code)
    return tuple(sorted(value.items()))


def _bool(body: Mapping[str, Any], key: str, default: bool, code: str) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"{key} must be true or false", code)
    return value


def _statuses(value: Any, what: str, code: str) -> frozenset[Status]:
    names = _strings(value, what, code)
    known = {s.value for s in Status}
    for name in names:
        if name not in known:
            raise _bad(f"{what}: unknown status {name!r}", code)
    return frozenset(Status(n) for n in names)


def target(body: Mapping[str, Any], code: str) -> Target:
    return Target(
        devices=_strings(body.get("devices", []), "devices", code, _DEVICE_ID),
        labels=_labels(body.get("labels", {}), code),
        profiles=_strings(body.get("profiles", []), "profiles", code),
    )


def webhook_filter(value: Any) -> WebhookFilter:
    code = "invalid_webhook"
    if not isinstance(value, dict):
        raise _bad("filter must be an object", code)
    refuse_unknown(value, FILTER_FIELDS, "filter")
    return WebhookFilter(
        target=target(value, code),
        transitions=_bool(value, "transitions", True, code),
        from_statuses=_statuses(value.get("from", []), "from", code),
        to_statuses=_statuses(value.get("to", []), "to", code),
        alerts=_bool(value, "alerts", True, code),
        rules=_strings(value.get("rules", []), "rules", code, RULE_NAME),
    )


def url(value: Any) -> str:
    """An absolute http(s) URL with a host; the address check comes later (``ssrf``)."""
    code = "invalid_webhook"
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_URL:
        raise _bad(f"url must be a string of 1-{MAX_URL} characters", code)
    if not value.isascii() or any(c.isspace() or ord(c) < 32 for c in value):
        raise _bad("url must be ASCII without spaces (punycode for international names)", code)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise _bad("url is not a valid URL", code) from None
    if parts.scheme not in ("http", "https"):
        raise _bad("url must start with http:// or https://", code)
    if not parts.hostname:
        raise _bad("url must name a host", code)
    if parts.username is not None or parts.password is not None:
        raise _bad("url must not carry credentials (use headers)", code)
    if port == 0:
        raise _bad("url port must be 1-65535", code)
    return value


def headers(value: Any) -> dict[str, str]:
    code = "invalid_webhook"
    if not isinstance(value, dict) or len(value) > MAX_HEADERS:
        raise _bad(f"headers must be an object of at most {MAX_HEADERS} headers", code)
    out: dict[str, str] = {}
    for name, text in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise _bad(f"header name {name!r} is not a valid token", code)
        lower = name.lower()
        if lower in FORBIDDEN_HEADERS or lower.startswith("lastseen-"):
            raise _bad(f"header {name!r} may not be set (see docs/notifications.md)", code)
        if lower in {k.lower() for k in out}:
            raise _bad(f"header {name!r} given twice", code)
        if (
            not isinstance(text, str)
            or len(text) > MAX_HEADER_VALUE
            or not text.isascii()
            or any(ord(c) < 32 or ord(c) == 127 for c in text)
        ):
            raise _bad(
                f"header {name!r}: value must be printable ASCII <= {MAX_HEADER_VALUE}", code
            )
        out[name] = text
    return out


def webhook_format(value: Any) -> Format:
    if value not in ("json", "slack"):
        raise _bad("format must be json or slack", "invalid_webhook")
    return Format(value)


def description(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise _bad(f"description must be a string of at most {MAX_DESCRIPTION}", "invalid_webhook")
    return value


def _seconds(body: Mapping[str, Any], key: str, code: str, default: float | None = None) -> float:
    value = body.get(key, default)
    if value is None:
        raise _bad(f"{key} is required for this kind of rule", code)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{key} must be a number of seconds", code)
    seconds = float(value)
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_SECONDS:
        raise _bad(f"{key} must be > 0 and <= {MAX_SECONDS:g} seconds", code)
    return seconds


def rule(name: str, body: Any, source: str = "api") -> AlertRule:
    """An alert rule named ``name`` from its JSON (or TOML) body."""
    code = "invalid_alert_rule"
    if not RULE_NAME.fullmatch(name):
        raise _bad(f"rule name {name!r} must be 1-64 of A-Z a-z 0-9 _ -", code)
    if not isinstance(body, dict):
        raise _bad("a rule must be an object", code)
    refuse_unknown(body, RULE_FIELDS, "alert rule")
    try:
        kind = AlertKind(str(body.get("kind")))
    except ValueError:
        known = ", ".join(k.value for k in AlertKind)
        raise _bad(f"kind must be one of {known}", code) from None
    allowed = {
        AlertKind.OFFLINE_FOR: {"duration"},
        AlertKind.STALE_FOR: {"duration"},
        AlertKind.FLAPPING: {"count", "window", "quiet"},
        AlertKind.BACK_ONLINE: set(),
    }[kind]
    for key in ("duration", "count", "window", "quiet"):
        if key in body and key not in allowed:
            raise _bad(f"{key} does not apply to a {kind.value} rule", code)
    found = target(body, code)
    if kind in (AlertKind.OFFLINE_FOR, AlertKind.STALE_FOR):
        return AlertRule(
            name, kind, found, duration=_seconds(body, "duration", code), source=source
        )
    if kind is AlertKind.FLAPPING:
        count = body.get("count")
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
            raise _bad("count must be an integer 1-1000", code)
        window = _seconds(body, "window", code)
        quiet = _seconds(body, "quiet", code, window)
        return AlertRule(name, kind, found, count=count, window=window, quiet=quiet, source=source)
    return AlertRule(name, kind, found, source=source)
