"""Times on the wire: RFC 3339 UTC with milliseconds, e.g. ``2026-11-23T07:38:23.123Z``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_prefixes: dict[int, str] = {}
_CACHE_LIMIT = 4096


def rfc3339(ts: float) -> str:
    """Format epoch seconds. Per-second prefixes are cached: the hot path formats the
    same few seconds thousands of times (a heartbeat's time, a burst's deadlines,
    a recovery alternating between each device's stale and offline deadlines)."""
    millis = round(ts * 1000)
    second, ms = divmod(millis, 1000)
    prefix = _prefixes.get(second)
    if prefix is None:
        if len(_prefixes) >= _CACHE_LIMIT:
            _prefixes.clear()
        prefix = _prefixes[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{prefix}.{ms:03d}Z"


def rfc3339_or_none(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 timestamp (any offset) to epoch seconds; ``ValueError`` if bad."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return value.astimezone(UTC).timestamp()
