"""Parsing and validating what clients send. Nothing here changes state.

Every refusal is an ``InvalidInput`` with a stable ``code`` (listed in docs/api.md)
so clients can act on it and ``/metrics`` can count it.
Unknown top-level fields are refused (``unknown_field``) rather than ignored, so a
misspelt ``attributs`` is reported instead of silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request

from lastseen.errors import InvalidInput, PayloadTooLarge
from lastseen.presence import Status

MAX_KEYS = 256
MAX_KEY_LENGTH = 128
MAX_DEPTH = 8
MAX_LABELS = 64
MAX_LABEL_LENGTH = 256


async def read_json(request: Request, limit: int, *, allow_empty: bool = False) -> Any:
    """The request body parsed as JSON, refusing bodies over ``limit`` bytes unread."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_length = int(declared)
        except ValueError:
            raise InvalidInput("Content-Length is not a number", code="invalid_body") from None
        if declared_length > limit:
            raise PayloadTooLarge(f"body over {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        if allow_empty:
            return None
        raise InvalidInput("a JSON body is required", code="invalid_body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}", code="invalid_json") from None


def require_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object", code="invalid_body")
    return value


def refuse_unknown(body: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    for key in body:
        if key not in allowed:
            raise InvalidInput(f"{what}: unknown field {key!r}", code="unknown_field")


def _depth(value: Any, limit: int) -> bool:
    """True if ``value`` nests no deeper than ``limit`` (iterative: no recursion bombs)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def attributes(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("attributes must be a JSON object", code="invalid_attributes")
    if len(value) > MAX_KEYS:
        raise InvalidInput(f"attributes: more than {MAX_KEYS} keys", code="too_many_keys")
    for key in value:
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(f"attributes: key over {MAX_KEY_LENGTH} chars", code="key_too_long")
    if not _depth(value, MAX_DEPTH):
        raise InvalidInput(f"attributes nest deeper than {MAX_DEPTH}", code="too_deep")
    return value


def metrics(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("metrics must be a JSON object", code="invalid_metrics")
    if len(value) > MAX_KEYS:
        raise InvalidInput(f"metrics: more than {MAX_KEYS} keys", code="too_many_keys")
    for key, number in value.items():
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(f"metrics: key over {MAX_KEY_LENGTH} chars", code="key_too_long")
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidInput(f"metrics.{key} must be a number", code="invalid_metrics")
        if not math.isfinite(number):
            raise InvalidInput(f"metrics.{key} must be finite", code="invalid_metrics")
    return value


def labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidInput("labels must be a JSON object of strings", code="invalid_labels")
    if len(value) > MAX_LABELS:
        raise InvalidInput(f"more than {MAX_LABELS} labels", code="invalid_labels")
    for key, text in value.items():
        if not key or len(key) > MAX_KEY_LENGTH or ":" in key:
            raise InvalidInput(
                f"label key {key!r} must be 1-{MAX_KEY_LENGTH} chars without ':'",
                code="invalid_labels",
            )
        if not isinstance(text, str) or len(text) > MAX_LABEL_LENGTH:
            raise InvalidInput(
                f"label {key!r} must be a string of at most {MAX_LABEL_LENGTH} chars",
                code="invalid_labels",
            )
    return value


def status(value: str) -> Status:
    try:
        return Status(value)
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise InvalidInput(
            f"unknown status {value!r} (one of {known})", code="invalid_status"
        ) from None


def label_pair(value: str) -> tuple[str, str]:
    key, sep, text = value.partition(":")
    if not sep or not key:
        raise InvalidInput(f"label filter {value!r} must be key:value", code="invalid_label_filter")
    return key, text


def int_param(
    conn: HTTPConnection,
    name: str,
    default: int | None,
    *,
    minimum: int = 0,
    maximum: int | None = None,
) -> int | None:
    raw = conn.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer", code="invalid_parameter") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and <= {maximum}" if maximum is not None else ""
        raise InvalidInput(f"{name} must be >= {minimum}{bound}", code="invalid_parameter")
    return value
