"""The inbound MQTT connection: the sans-IO codec driven by an ``asyncio.Protocol``.

The transport hands over whatever one socket read returned (up to 256 KiB); the
decoder turns all complete PUBLISHes in it into tuples and the whole list goes to
the sink (the bridge's inbox) in one call. Nothing is done per message here.

Flow control, both QoS levels:

* QoS 1 — the broker never has more than ``receive_maximum`` unacknowledged
  messages out to this client (MQTT 5 Receive Maximum, set in CONNECT), and the
  bridge acknowledges a message only after the hub has applied it. A slow hub
  therefore slows the broker's delivery; nothing is acknowledged and then lost.
* QoS 0 — MQTT has no flow control; when the inbox is full the sink calls
  ``pause_reading()`` and TCP pushes back on the broker, which buffers or drops
  by its own limits (Mosquitto: ``max_queued_messages``/``max_queued_bytes``).

Keep-alive follows ``keepalive.KeepAlive``: one ``call_at`` timer, re-armed to the
deadline the pure object names.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from typing import Any, cast

from lastseen.errors import LastseenError
from lastseen.mqtt import codec
from lastseen.mqtt.keepalive import Due, KeepAlive

#: What the bridge's inbox gets: the connection (to acknowledge on) and its messages.
Sink = Callable[["Subscriber", list[codec.Publish]], None]


class ConnectionLost(LastseenError):
    """The inbound connection to the broker failed, was refused or closed."""

    code = "mqtt_connection_lost"


class Subscriber(asyncio.Protocol):
    """One subscribing connection. Made by ``open_subscriber``."""

    def __init__(
        self, sink: Sink, *, keepalive: int, maximum_packet: int, version: int = codec.V5
    ) -> None:
        self._sink = sink
        self._version = version
        self._decoder = codec.Decoder(version=version, maximum_packet=maximum_packet)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._keepalive = KeepAlive(keepalive, self._loop.time())
        self._timer: asyncio.TimerHandle | None = None
        self._replies: asyncio.Queue[codec.Control] = asyncio.Queue()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        # The bridge awaits ``closed``; a failed handshake leaves nobody to, so its
        # exception is marked retrieved here rather than logged at collection.
        self.closed.add_done_callback(_retrieved)
        self.paused = False
        self._handshaking = True

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        publishes: list[codec.Publish] = []
        try:
            controls = self._decoder.feed(data, publishes)
        except codec.MalformedPacket as exc:
            self._fail(ConnectionLost(f"malformed packet from the broker: {exc}"))
            return
        self._keepalive.received()
        if publishes:
            self._sink(self, publishes)
        for control in controls:
            if isinstance(control, codec.Disconnect):
                self._fail(ConnectionLost(f"the broker disconnected (reason {control.reason})"))
                return
            # Only the handshake waits for replies (one CONNACK, one SUBACK); any
            # later ones are not queued, so a broker cannot grow this queue.
            if self._handshaking and not isinstance(control, codec.PingResp):
                self._replies.put_nowait(control)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.closed.done():
            self.closed.set_exception(ConnectionLost(str(exc) if exc else "connection closed"))

    # ------------------------------------------------------------ used by the bridge

    def ack(self, packet_ids: Sequence[int]) -> None:
        """PUBACK these QoS 1 messages (after the hub applied them)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(codec.pubacks(packet_ids))
            self._keepalive.sent(self._loop.time())

    def pause_reading(self) -> None:
        if self._transport is not None and not self.paused:
            self.paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and self.paused:
            self.paused = False
            self._transport.resume_reading()

    def close(self) -> None:
        """DISCONNECT cleanly and close."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(codec.DISCONNECT)
            self._transport.close()

    # ------------------------------------------------------------ internals

    def _fail(self, error: ConnectionLost) -> None:
        if not self.closed.done():
            self.closed.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    async def _reply(self, timeout: float) -> codec.Control:
        reply = asyncio.ensure_future(self._replies.get())
        waiters: set[asyncio.Future[Any]] = {reply, self.closed}
        try:
            async with asyncio.timeout(timeout):
                done, _ = await asyncio.wait(waiters, return_when="FIRST_COMPLETED")
        finally:
            reply.cancel()
        if reply in done and not reply.cancelled():
            return reply.result()
        self.closed.result()  # raises ConnectionLost
        raise ConnectionLost("connection closed")  # pragma: no cover - result() raised

    def _send(self, packet: bytes) -> None:
        assert self._transport is not None
        self._transport.write(packet)
        self._keepalive.sent(self._loop.time())

    def _arm(self) -> None:
        deadline = self._keepalive.deadline()
        if deadline is not None and not self.closed.done():
            self._timer = self._loop.call_at(deadline, self._tick)

    def _tick(self) -> None:
        due = self._keepalive.due(self._loop.time())
        if due is Due.DEAD:
            self._fail(ConnectionLost("no answer to PINGREQ within the keep-alive"))
            return
        if due is Due.PING:
            self._send(codec.PINGREQ)
        self._arm()

    async def handshake(
        self,
        connect: bytes,
        filters: Sequence[tuple[str, int]],
        *,
        timeout: float,
    ) -> codec.ConnAck:
        """CONNECT, then SUBSCRIBE; raises ConnectionLost on refusal or timeout."""
        try:
            self._send(connect)
            connack = await self._reply(timeout)
            if not isinstance(connack, codec.ConnAck) or connack.reason:
                reason = getattr(connack, "reason", "?")
                raise ConnectionLost(f"the broker refused the connection (reason {reason})")
            if connack.keep_alive is not None:
                self._keepalive.interval = connack.keep_alive
            self._send(codec.subscribe(1, filters, version=self._version))
            suback = await self._reply(timeout)
            if not isinstance(suback, codec.SubAck) or any(c >= 0x80 for c in suback.codes):
                codes = getattr(suback, "codes", "?")
                raise ConnectionLost(f"the broker refused the subscription (codes {codes})")
        except TimeoutError:
            self._fail(ConnectionLost("no answer from the broker in time"))
            raise ConnectionLost("no answer from the broker in time") from None
        except ConnectionLost:
            self.close()
            raise
        self._handshaking = False
        self._arm()
        return connack


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


async def open_subscriber(
    host: str,
    port: int,
    sink: Sink,
    *,
    connect: bytes,
    filters: Sequence[tuple[str, int]],
    keepalive: int,
    maximum_packet: int,
    tls: ssl.SSLContext | None = None,
    timeout: float = 10.0,
    version: int = codec.V5,
) -> Subscriber:
    """Connect, subscribe and return the live connection (``closed`` ends it)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            _, protocol = await loop.create_connection(
                lambda: Subscriber(
                    sink, keepalive=keepalive, maximum_packet=maximum_packet, version=version
                ),
                host,
                port,
                ssl=tls,
                server_hostname=host if tls is not None else None,
            )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise ConnectionLost(f"cannot reach the broker: {exc or type(exc).__name__}") from exc
    await protocol.handshake(connect, filters, timeout=timeout)
    return protocol
