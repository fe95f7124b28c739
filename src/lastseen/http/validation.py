"""Parsing and validating what clients send. Nothing here changes state.

Every refusal is an ``InvalidInput`` with a stable ``code`` (listed in docs/api.md
and docs/security.md) so clients can act on it and ``/metrics`` can count it.
Unknown top-level fields are refused (``unknown_field``) rather than ignored, so a
misspelt ``attributs`` is reported instead of silently dropped.

Limits on device-supplied JSON (attributes) bound what one device can make the hub
keep in memory and in the store: depth, keys per object, items per array, characters
per key and per string, and values in all. The body cap (``--max-body``) bounds
everything else, and every walk here is iterative, so no input can recurse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.types import Receive, Scope

from lastseen.errors import InvalidInput, PayloadTooLarge
from lastseen.presence import Status

#: Keys in one JSON object (attributes, metrics, and every object nested in them).
MAX_KEYS = 256
#: Characters in one key.
MAX_KEY_LENGTH = 128
#: Nesting of attributes: ``{"a": {"b": ...}}`` is depth 2.
MAX_DEPTH = 8
#: Items in one JSON array inside attributes.
MAX_ITEMS = 256
#: Characters in one string value inside attributes.
MAX_STRING = 4096
#: Values (objects, arrays and scalars) in one attributes document.
MAX_VALUES = 4096
MAX_LABELS = 64
MAX_LABEL_LENGTH = 256


def declared_length(scope: Scope, limit: int) -> int | None:
    """The request's ``Content-Length`` (None when absent), refusing a malformed one
    or one over ``limit`` before a byte is read."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise InvalidInput("Content-Length is not a number", code="invalid_body") from None
            if declared > limit:
                raise PayloadTooLarge(f"body over {limit} bytes")
            return declared
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body from raw ASGI, refusing more than ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before reading a byte; a
    chunked body is counted as it arrives and refused as soon as it passes the limit.
    """
    if declared_length(scope, limit) == 0:
        return b""  # most heartbeats: nothing to read
    return await receive_body(receive, limit)


async def receive_body(receive: Receive, limit: int) -> bytes:
    """The body's messages joined, refusing more than ``limit`` bytes as they arrive
    (``read_body`` without the ``Content-Length`` check, for a caller that made it)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_json(request: Request, limit: int, *, allow_empty: bool = False) -> Any:
    """The request body parsed as JSON, refusing bodies over ``limit`` bytes unread."""
    return parse_json(await read_body(request.scope, request.receive, limit), allow_empty)


def parse_json(body: bytes, allow_empty: bool = False) -> Any:
    """``body`` parsed as JSON; an empty body is None when ``allow_empty``."""
    if not body:
        if allow_empty:
            return None
        raise InvalidInput("a JSON body is required", code="invalid_body")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}", code="invalid_json") from None
    if value is None:
        # Not the same as no body: a literal null is a value, and not an object.
        raise InvalidInput("the body is JSON null; send an object or nothing", code="invalid_body")
    return value


def require_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object", code="invalid_body")
    return value


def refuse_unknown(body: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    for key in body:
        if key not in allowed:
            raise InvalidInput(f"{what}: unknown field {key!r}", code="unknown_field")


def _check_tree(value: dict[str, Any], what: str) -> None:
    """Enforce every attributes limit in one iterative walk (no recursion bombs)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise InvalidInput(f"{what}: more than {MAX_VALUES} values", code="too_many_items")
        if isinstance(item, str):
            if len(item) > MAX_STRING:
                raise InvalidInput(
                    f"{what}: a string over {MAX_STRING} chars", code="value_too_long"
                )
        elif isinstance(item, dict):
            if depth > MAX_DEPTH:
                raise InvalidInput(f"{what} nest deeper than {MAX_DEPTH}", code="too_deep")
            if len(item) > MAX_KEYS:
                raise InvalidInput(f"{what}: more than {MAX_KEYS} keys", code="too_many_keys")
            for key, child in item.items():
                if len(key) > MAX_KEY_LENGTH:
                    raise InvalidInput(
                        f"{what}: key over {MAX_KEY_LENGTH} chars", code="key_too_long"
                    )
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                raise InvalidInput(f"{what} nest deeper than {MAX_DEPTH}", code="too_deep")
            if len(item) > MAX_ITEMS:
                raise InvalidInput(
                    f"{what}: an array of more than {MAX_ITEMS} items", code="too_many_items"
                )
            stack.extend((child, depth + 1) for child in item)


def attributes(value: Any) -> dict[str, Any] | None:
    """Device-reported attributes: any JSON object within the limits above.

    Values keep their JSON types (string, number, boolean, null, array, object). A
    time inside them is data, never a clock: the hub orders everything by its own
    time of receipt.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("attributes must be a JSON object", code="invalid_attributes")
    _check_tree(value, "attributes")
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
        # PostgreSQL's text and jsonb cannot hold NUL: refused here, not by the store.
        if "\x00" in key or "\x00" in text:
            raise InvalidInput(f"label {key!r} must not contain NUL", code="invalid_labels")
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


def repeated_parameter(query: bytes) -> str | None:
    """The first query parameter given more than once, or None.

    Outside the stream filters every parameter takes one value; a second one is
    refused rather than silently winning or losing (a proxy that checked the first
    and an app that used the last would disagree: HTTP parameter pollution).
    """
    seen: set[str] = set()
    for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return name
        seen.add(name)
    return None


#: Query integers (seqs, ids, page sizes) have at most this many digits: far beyond
#: any real seq, and inside every database's 64-bit integers.
MAX_DIGITS = 15


def int_param(
    conn: HTTPConnection,
    name: str,
    default: int | None,
    *,
    minimum: int = 0,
    maximum: int | None = None,
) -> int | None:
    """A query integer written canonically: ASCII digits, no sign, no leading zero,
    at most ``MAX_DIGITS``. Empty or absent gives ``default``."""
    raw = conn.query_params.get(name)
    if raw is None or raw == "":
        return default
    if (
        not (raw.isascii() and raw.isdigit())
        or len(raw) > MAX_DIGITS
        or (raw[0] == "0" and len(raw) > 1)
    ):
        raise InvalidInput(
            f"{name} must be a whole number (digits only, at most {MAX_DIGITS})",
            code="invalid_parameter",
        )
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and <= {maximum}" if maximum is not None else ""
        raise InvalidInput(f"{name} must be >= {minimum}{bound}", code="invalid_parameter")
    return value
