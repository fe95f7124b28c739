"""The inbound side of MQTT as pure encoders and one incremental decoder (sans-IO).

Theory of operation
-------------------
A presence hub subscribes and receives; it never publishes on its inbound
connection. So the client side of MQTT it needs is small: *encode* CONNECT,
SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT, and *decode* what a broker sends a
subscriber (CONNACK, SUBACK, PUBLISH, PINGRESP, DISCONNECT). Nothing here reads a
socket or a clock: bytes go in, bytes or values come out, so the same code is
driven by the asyncio shell (``mqtt/subscriber.py``), by unit tests and by
Hypothesis with arbitrary bytes split at arbitrary points.

Speed is the reason this module exists. A general client builds a message object
(and, in MQTT 5, a properties object) per PUBLISH; at tens of thousands of messages
a second that, not the hub, was the ceiling. ``Decoder.feed`` takes one large read,
walks every complete packet in it with integer indexing, and appends each PUBLISH
as a plain ``(topic, payload, retain, packet_id)`` tuple to the caller's list; its
MQTT 5 properties are skipped by their length, never parsed (the bridge asks for no
topic aliases, so none carries anything it needs). Control packets, a handful per
connection, become small frozen values. A broken stream (reserved packet type, bad
length, invalid UTF-8 topic, a packet over the agreed maximum) raises
``MalformedPacket``: the connection cannot be trusted past that point and is closed.

The broker's own *Receive Maximum* (in CONNACK) limits a client's QoS 1 publishes;
this connection publishes nothing, so it is not kept (the outbound aiomqtt
connection honours it for the retained publishes).

Both protocol levels decode: ``V5`` (what the bridge speaks: shared subscriptions,
receive maximum, maximum packet size) and ``V311`` (kept for A/B measurement; the
difference per PUBLISH is one skipped property length).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from lastseen.errors import LastseenError

V311, V5 = 4, 5
#: ``(topic, payload, retain, packet_id)``; ``packet_id`` is 0 at QoS 0.
Publish = tuple[str, bytes, bool, int]
#: The protocol's largest remaining length (four length bytes).
MAX_REMAINING = 268_435_455
PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"

_CONNACK, _PUBLISH, _SUBACK, _PINGRESP, _DISCONNECT = 2, 3, 9, 13, 14
#: Packets a broker may send a client that this subscriber ignores (acks of its
#: own publishes it never sends, UNSUBACK, AUTH).
_IGNORED = frozenset({4, 5, 6, 7, 11, 15})
_PROP_SESSION_EXPIRY = 0x11
_PROP_RECEIVE_MAXIMUM = 0x21
_PROP_MAXIMUM_PACKET = 0x27
_PROP_SERVER_KEEP_ALIVE = 0x13
#: Property id → size of its value in bytes, or -1 (UTF-8/binary: 2-byte length),
#: -2 (a string pair), -3 (a variable byte integer). MQTT 5 §2.2.2.2.
_PROPERTY_SIZES = {
    0x01: 1, 0x02: 4, 0x03: -1, 0x08: -1, 0x09: -1, 0x0B: -3, 0x11: 4, 0x12: -1,
    0x13: 2, 0x15: -1, 0x16: -1, 0x17: 1, 0x18: 4, 0x19: 1, 0x1A: -1, 0x1C: -1,
    0x1F: -1, 0x21: 2, 0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x26: -2, 0x27: 4,
    0x28: 1, 0x29: 1, 0x2A: 1,
}  # fmt: skip


class MalformedPacket(LastseenError):
    """The broker sent bytes that are not MQTT: the connection must be closed."""

    code = "mqtt_malformed"


@dataclass(frozen=True, slots=True)
class ConnAck:
    """The broker's answer to CONNECT; ``reason`` 0 is success (MQTT 5 reason codes,
    3.1.1 return codes as they are). ``keep_alive`` is the server's override, if any."""

    reason: int
    session_present: bool = False
    keep_alive: int | None = None


@dataclass(frozen=True, slots=True)
class SubAck:
    """Granted QoS (0-2) or a failure reason (>= 0x80) per requested filter."""

    packet_id: int
    codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PingResp:
    """The broker answered a PINGREQ."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The broker closes the connection, with a reason (MQTT 5)."""

    reason: int = 0


Control = ConnAck | SubAck | PingResp | Disconnect


# ---------------------------------------------------------------------- encoding


def varint(n: int) -> bytes:
    """MQTT's variable byte integer (7 bits a byte, the high bit says more follow)."""
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _text(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 0xFFFF:
        raise ValueError("an MQTT string is at most 65 535 bytes")
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect(
    client_id: str,
    *,
    version: int = V5,
    keepalive: int = 60,
    username: str | None = None,
    password: str | None = None,
    clean_start: bool = True,
    session_expiry: int = 0,
    receive_maximum: int = 65_535,
    maximum_packet: int = MAX_REMAINING,
) -> bytes:
    """A CONNECT packet. The MQTT 5 properties tell the broker how many unacknowledged
    QoS 1 messages this client takes at once (``receive_maximum``, 1-65535) and the
    largest packet it accepts; 3.1.1 has neither."""
    flags = (0x02 if clean_start else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    body = _text("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == V5:
        props = b""
        if session_expiry:
            props += struct.pack("!BI", _PROP_SESSION_EXPIRY, session_expiry)
        props += struct.pack("!BH", _PROP_RECEIVE_MAXIMUM, receive_maximum)
        props += struct.pack("!BI", _PROP_MAXIMUM_PACKET, maximum_packet)
        body += varint(len(props)) + props
    body += _text(client_id)
    if username is not None:
        body += _text(username)
    if password is not None:
        body += _text(password)
    return _packet(0x10, body)


def subscribe(packet_id: int, filters: Sequence[tuple[str, int]], *, version: int = V5) -> bytes:
    """A SUBSCRIBE for ``(filter, qos)`` pairs."""
    body = struct.pack("!H", packet_id) + (b"\x00" if version == V5 else b"")
    for topic_filter, qos in filters:
        body += _text(topic_filter) + bytes([qos])
    return _packet(0x82, body)


def puback(packet_id: int) -> bytes:
    """A PUBACK (success; MQTT 5 lets the reason code be left out when it is 0)."""
    return struct.pack("!BBH", 0x40, 2, packet_id)


def pubacks(packet_ids: Sequence[int]) -> bytes:
    """PUBACKs for many messages in one buffer, for one write."""
    return struct.pack(f"!{len(packet_ids)}I", *(0x40020000 | i for i in packet_ids))


def publish(
    topic: str,
    payload: bytes,
    *,
    qos: int = 0,
    packet_id: int = 0,
    retain: bool = False,
    version: int = V5,
) -> bytes:
    """A PUBLISH as a broker sends it (tests and load generators)."""
    body = _text(topic) + (struct.pack("!H", packet_id) if qos else b"")
    body += (b"\x00" if version == V5 else b"") + payload
    return _packet(0x30 | (qos << 1) | (1 if retain else 0), body)


# ---------------------------------------------------------------------- decoding


class Decoder:
    """Incremental decoder of the packets a broker sends a subscriber.

    ``feed`` may be given any slice of the stream; a packet split across reads is
    kept until it is complete. ``maximum_packet`` bounds what is buffered.
    """

    __slots__ = ("_buffer", "_v5", "maximum_packet")

    def __init__(self, *, version: int = V5, maximum_packet: int = MAX_REMAINING) -> None:
        self._v5 = version == V5
        self.maximum_packet = maximum_packet
        self._buffer = b""

    def buffered(self) -> int:
        """Bytes of an incomplete packet waiting for the rest."""
        return len(self._buffer)

    def feed(self, data: bytes, publishes: list[Publish]) -> list[Control]:
        """Decode every complete packet of the stream so far: PUBLISHes are appended
        to ``publishes``; control packets are returned in order. Raises
        ``MalformedPacket`` when the stream is not MQTT."""
        if self._buffer:
            data = self._buffer + data
        controls: list[Control] = []
        end_of_data = len(data)
        v5 = self._v5
        limit = self.maximum_packet
        append = publishes.append
        pos = 0
        while end_of_data - pos >= 2:
            first = data[pos]
            # Remaining length, inline: this loop runs once per message.
            length = data[pos + 1]
            start = pos + 2
            if length > 0x7F:
                length, start = _long_length(data, pos + 1)
                if start < 0:
                    break  # the length itself is not complete yet
            end = start + length
            if end - pos > limit:
                raise MalformedPacket(f"a packet of {end - pos} bytes is over {limit}")
            if end > end_of_data:
                break
            kind = first >> 4
            if kind == _PUBLISH:
                if length < 2:
                    raise MalformedPacket("PUBLISH without a topic")
                index = start + 2 + ((data[start] << 8) | data[start + 1])
                if index > end:
                    raise MalformedPacket("PUBLISH topic overruns the packet")
                try:
                    topic = data[start + 2 : index].decode()
                except UnicodeDecodeError:
                    raise MalformedPacket("PUBLISH topic is not UTF-8") from None
                packet_id = 0
                if first & 0x06:
                    if first & 0x06 == 0x06:
                        raise MalformedPacket("PUBLISH with QoS 3")
                    packet_id = (data[index] << 8) | data[index + 1] if index + 2 <= end else -1
                    index += 2
                if v5 and index < end:
                    if data[index]:  # properties present: skipped by their length
                        skip, index = _varint_at(data, index, end)
                        index += skip
                    else:
                        index += 1
                if index > end or packet_id < 0:
                    raise MalformedPacket("PUBLISH shorter than its header")
                append((topic, data[index:end], bool(first & 1), packet_id))
            else:
                control = _control(kind, data[start:end], v5)
                if control is not None:
                    controls.append(control)
            pos = end
        self._buffer = data[pos:]
        return controls


def _long_length(data: bytes, at: int) -> tuple[int, int]:
    """A remaining length of 2-4 bytes at ``at``: ``(length, start of the body)``,
    or ``(0, -1)`` if it is not all in ``data`` yet."""
    value, shift = 0, 0
    for index in range(at, min(at + 4, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    if len(data) - at >= 4:
        raise MalformedPacket("remaining length longer than four bytes")
    return 0, -1


def _varint_at(data: bytes, at: int, end: int) -> tuple[int, int]:
    """A variable byte integer inside a packet ending at ``end``."""
    value, shift = 0, 0
    for index in range(at, min(at + 4, end)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    raise MalformedPacket("truncated or overlong variable byte integer")


def _control(kind: int, body: bytes, v5: bool) -> Control | None:
    if kind == _CONNACK:
        return _connack(body, v5)
    if kind == _SUBACK:
        if len(body) < 3:
            raise MalformedPacket("SUBACK too short")
        index = 2
        if v5:
            skip, index = _varint_at(body, 2, len(body))
            index += skip
        if index >= len(body):
            raise MalformedPacket("SUBACK without reason codes")
        return SubAck((body[0] << 8) | body[1], tuple(body[index:]))
    if kind == _PINGRESP:
        return PingResp()
    if kind == _DISCONNECT:
        return Disconnect(body[0] if body else 0)
    if kind in _IGNORED:
        return None  # not sent to a pure subscriber; harmless, never acted on
    raise MalformedPacket(f"packet type {kind} is not sent to a client")


def _connack(body: bytes, v5: bool) -> ConnAck:
    if len(body) < 2:
        raise MalformedPacket("CONNACK too short")
    keep_alive: int | None = None
    if v5 and len(body) > 2:
        size, index = _varint_at(body, 2, len(body))
        end = index + size
        if end > len(body):
            raise MalformedPacket("CONNACK properties overrun the packet")
        while index < end:
            prop = body[index]
            index += 1
            width = _PROPERTY_SIZES.get(prop)
            if width is None:
                raise MalformedPacket(f"unknown CONNACK property {prop:#x}")
            if prop == _PROP_SERVER_KEEP_ALIVE and index + 2 <= end:
                keep_alive = (body[index] << 8) | body[index + 1]
            index = _skip_property(body, index, end, width)
    return ConnAck(body[1], bool(body[0] & 1), keep_alive)


def _skip_property(body: bytes, index: int, end: int, width: int) -> int:
    if width >= 0:
        index += width
    elif width == -3:
        _, index = _varint_at(body, index, end)
    else:
        for _ in range(-width):  # one string, or a string pair
            if index + 2 > end:
                raise MalformedPacket("property string truncated")
            index += 2 + ((body[index] << 8) | body[index + 1])
    if index > end:
        raise MalformedPacket("property value truncated")
    return index
