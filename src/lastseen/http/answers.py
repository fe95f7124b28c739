"""The ingest routes' answers, written as bytes from preformatted pieces.

A heartbeat's answer is the same handful of fields every time, and a batch's is a
thousand two-field objects. Building a dict per answer (and per batch item) and
handing it to ``orjson.dumps`` cost more than the hub's own work for a heartbeat
(two ``rfc3339`` calls, an enum ``.value``, a ``Profile`` property, a seven-key dict),
so the answers are formatted into templates instead:

* ``status_since`` is cached per timestamp (a device's ``since`` only moves on a
  transition, and a fleet brought online together shares a few), ``last_seen`` per
  millisecond (the requests of one millisecond share it), ``next_heartbeat_in`` per
  profile;
* device ids need no JSON escaping: both routes only ever answer with an id that
  passed ``check_device_id`` (``A-Z a-z 0-9 . _ : @ -``);
* statuses are ``StrEnum`` members, so ``str`` operations give their value.

The output is byte-identical to ``orjson.dumps`` of ``beat_json`` and of the batch
answer's dict shape; ``tests/http/test_answers.py`` checks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from lastseen.hub.core import BeatResult
from lastseen.presence import Profile, Status
from lastseen.timefmt import rfc3339, rfc3339_or_none

_BEAT = (
    '{"device_id":"%s","status":"%s","status_since":"%s","last_seen":%s,'
    '"next_heartbeat_in":%s,"pending_commands":[],"should_reconnect":false}'
)
_ONLINE = Status.ONLINE
_ONLINE_ITEM = '","status":"online"}'
#: Distinct ``since`` values kept formatted; past it the cache starts again.
_CACHE_LIMIT = 65_536

_since: dict[float, str] = {}
_hints: dict[int, tuple[Profile, str]] = {}
# The last ``last_seen`` formatted: (its millisecond, its JSON).
_last: list[Any] = [None, "null"]


def beat_json(result: BeatResult) -> dict[str, Any]:
    """A heartbeat's answer as a dict: the shape ``beat_answer`` writes directly."""
    return {
        "device_id": result.device_id,
        "status": result.status.value,
        "status_since": rfc3339(result.since),
        "last_seen": rfc3339_or_none(result.last_seen),
        "next_heartbeat_in": result.profile.heartbeat_hint,
        "pending_commands": [],
        "should_reconnect": False,
    }


def _hint_json(profile: Profile) -> str:
    # Keyed by identity (a dataclass's hash walks every field); the profile is kept
    # in the value so an id can never be reused by another object while cached.
    if len(_hints) >= _CACHE_LIMIT:
        _hints.clear()
    text = orjson.dumps(profile.heartbeat_hint).decode()
    _hints[id(profile)] = (profile, text)
    return text


def beat_answer(result: BeatResult) -> bytes:
    """``orjson.dumps(beat_json(result))``, written from the template."""
    # The three caches are read inline: this runs once per heartbeat.
    at = result.since
    since = _since.get(at)
    if since is None:
        if len(_since) >= _CACHE_LIMIT:
            _since.clear()
        since = _since[at] = rfc3339(at)
    seen = result.last_seen
    if seen is None:
        last_seen = "null"
    else:
        # rfc3339 writes the rounded millisecond, so that is the cache key.
        millis = round(seen * 1000)
        if _last[0] != millis:
            _last[1] = f'"{rfc3339(seen)}"'
            _last[0] = millis
        last_seen = _last[1]
    profile = result.profile
    hint = _hints.get(id(profile))
    text = hint[1] if hint is not None and hint[0] is profile else _hint_json(profile)
    return (_BEAT % (result.device_id, result.status, since, last_seen, text)).encode()


def item_json(device_id: str, status: Status) -> str:
    """One accepted batch item: ``{"device_id": ..., "status": ...}``."""
    if status is _ONLINE:
        return '{"device_id":"' + device_id + _ONLINE_ITEM
    return '{"device_id":"' + device_id + '","status":"' + status + '"}'


def refusal_json(device_id: str | None, code: str, message: str) -> str:
    """One refused batch item, with its error (any text, so through orjson)."""
    body = {"device_id": device_id, "error": {"code": code, "message": message}}
    return orjson.dumps(body).decode()


_BETWEEN_ONLINE = _ONLINE_ITEM + ',{"device_id":"'


def online_batch(device_ids: Sequence[str]) -> bytes:
    """The answer to a batch whose every item was accepted and is online (the common
    batch): one join, no per-item work."""
    if not device_ids:
        return batch_answer(0, 0, ())
    joined = _BETWEEN_ONLINE.join(device_ids)
    head = f'{{"accepted":{len(device_ids)},"rejected":0,"results":[{{"device_id":"'
    return (head + joined + _ONLINE_ITEM + "]}").encode()


def batch_answer(accepted: int, rejected: int, results: Sequence[str]) -> bytes:
    """``{"accepted", "rejected", "results"}`` around the items' JSON."""
    joined = ",".join(results)
    return f'{{"accepted":{accepted},"rejected":{rejected},"results":[{joined}]}}'.encode()
