"""A transition event's JSON, rendered in two parts so a burst renders the shared part once.

``orjson.dumps(event_json(...))`` per event built a ten-key dict, formatted the time
and returned a 4 KiB buffer that ``wire.compact`` then copied: about a third of a
100 000-device burst's publishing time. Devices that time out together share one
``Transition`` (``hub/expiry.py``), so everything after ``device_id`` is the same
bytes for all of them: ``event_tail`` renders it once, ``event_bytes`` joins the
seq, the id (JSON-encoded by orjson, so any string is safe) and that tail. The
result is byte-for-byte what ``orjson.dumps(event_json(...))`` gives (tested).
"""

from __future__ import annotations

import orjson

from lastseen.presence import Transition
from lastseen.wire import event_json

_PREFIX = b'{"type":"transition","seq":'


def event_tail(transition: Transition) -> bytes:
    """The JSON after ``"device_id":...,`` for this transition, with the closing brace."""
    fields = event_json(0, "", transition)
    for key in ("type", "seq", "device_id"):
        del fields[key]
    return orjson.dumps(fields)[1:]


def event_bytes(seq: int, device_id: str, tail: bytes) -> bytes:
    """The event's JSON object: ``orjson.dumps(event_json(seq, device_id, t))``."""
    return b'%b%d,"device_id":%b,%b' % (_PREFIX, seq, orjson.dumps(device_id), tail)
