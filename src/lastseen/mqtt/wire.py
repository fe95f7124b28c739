"""A minimal MQTT 3.1.1 device over a plain blocking socket, for load generators and tests.

A load generator written on a full client library spends more CPU per message than
the hub it measures, on the same cores. This one encodes its few packet types
itself (CONNECT with an optional will here; PUBLISH at QoS 0 and 1 from ``codec``)
and sends them in large writes. It also lets a test *kill* a device the way a power cut does:
``abort()`` closes the socket without DISCONNECT, so the broker publishes the will.
Not a general client: no subscriptions, no QoS 2, no reconnects.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from lastseen.mqtt import codec

CONNACK, PUBACK = 0x20, 0x40


def _text(value: bytes) -> bytes:
    return struct.pack("!H", len(value)) + value


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 1


def connect_packet(client_id: str, *, keepalive: int = 60, will: Will | None = None) -> bytes:
    flags = 0x02  # clean session
    payload = _text(client_id.encode())
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _text(will.topic.encode()) + _text(will.payload)
    body = _text(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
    return b"\x10" + codec.varint(len(body)) + body


def publish_packet(
    topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 0, retain: bool = False
) -> bytes:
    return codec.publish(
        topic, payload, qos=qos, packet_id=packet_id, retain=retain, version=codec.V311
    )


class RawDevice:
    """One MQTT 3.1.1 connection. ``publish_many`` pipelines QoS 1 with a bounded
    window of unacknowledged messages."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        keepalive: int = 60,
        will: Will | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id, keepalive=keepalive, will=will))
        ack = self._read_exactly(4)
        if ack[0] != CONNACK or ack[3] != 0:
            raise ConnectionError(f"broker refused the connection: {ack!r}")
        self._next_id = 0
        self._buffer = b""

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def publish(self, topic: str, payload: bytes = b"", *, retain: bool = False) -> None:
        """One QoS 0 message."""
        self.sock.sendall(publish_packet(topic, payload, retain=retain))

    def publish_many(
        self, messages: list[tuple[str, bytes]], *, qos: int = 0, window: int = 1000
    ) -> None:
        """Send every message; at QoS 1 wait for all PUBACKs, at most ``window`` pending."""
        if qos == 0:
            for start in range(0, len(messages), 1000):
                chunk = messages[start : start + 1000]
                self.sock.sendall(b"".join(publish_packet(t, p) for t, p in chunk))
            return
        pending = 0
        chunk_size = max(1, min(500, window // 2))
        for start in range(0, len(messages), chunk_size):
            chunk = messages[start : start + chunk_size]
            packets = [publish_packet(t, p, qos=1, packet_id=self._packet_id()) for t, p in chunk]
            self.sock.sendall(b"".join(packets))
            pending += len(chunk)
            while pending > window - chunk_size:
                pending -= self._read_acks()
        while pending > 0:
            pending -= self._read_acks()

    def _read_acks(self) -> int:
        """Block for PUBACKs; the number read."""
        data = self._buffer + self.sock.recv(65536)
        if len(data) == len(self._buffer):
            raise ConnectionError("broker closed the connection")
        whole = len(data) // 4 * 4  # a PUBACK is 4 bytes: 0x40 0x02 id id
        self._buffer = data[whole:]
        return whole // 4

    def disconnect(self) -> None:
        """A clean close: DISCONNECT first, so the broker discards the will."""
        try:
            self.sock.sendall(codec.DISCONNECT)
        finally:
            self.sock.close()

    def abort(self) -> None:
        """Close without DISCONNECT (a crash, a power cut): the broker sends the will."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
