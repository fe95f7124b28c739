"""The MQTT bridge: devices' messages into the hub, the hub's presence back out, retained.

Theory of operation
-------------------
Two connections to the broker, both MQTT 5, made and lost together.

*Inbound* is lastseen's own lean subscriber (``codec`` + ``subscriber``): a general
client library spent more per message than the hub did. It subscribes to
``{prefix}+/heartbeat``, ``+/telemetry`` and ``+/status`` as a shared subscription
(``$share/{group}/...``): instances in one group split the messages, each message
reaches one of them. Every socket read's messages go to the bounded ``Inbox`` as one
chunk; a consumer task takes batches off it, decodes them with the pure parser and
applies them through the hub's public methods in ``waves`` (one ``heartbeats`` batch
plus concurrent single calls, order kept per device). QoS 1 messages are acknowledged
only once their batch has been applied; a full inbox pauses reading instead of
dropping. A message that does not decode, or that the hub refuses, changes nothing
and is counted (and is acknowledged: it was processed).

*Outbound* is an aiomqtt client (client id ``{client_id}-out``): retained publishes
are few (a republish on connect, then one pair per transition), so a library's
per-message cost does not matter there, and its QoS 1 in-flight handling is kept.

*Outbound.* While connected, the bridge is a stream subscriber of the hub like any SSE
client: first a snapshot, published as retained presence and availability of every
device, then each committed transition and each device deletion. Republishing on
every (re)connect is what makes the retained state match the hub after a restart of
the hub, of the broker, or a lost connection, and after the subscriber fell too far
behind (a ``reset``): nothing has to be remembered between connections.

*Robustness.* A lost or refused connection is retried with capped exponential backoff
and jitter, forever; ``ready()`` is false meanwhile (``/readyz``). No exception from
the broker or from a message ends the bridge.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

import aiomqtt
import orjson
from aiomqtt.client import ProtocolVersion

from lastseen.errors import InvalidInput, LastseenError, NotFound, Unavailable
from lastseen.hub.broadcast import DEVICE, RESET, TRANSITION, Message, StreamFilter, Subscriber
from lastseen.metrics import Registry
from lastseen.mqtt import codec, outbound
from lastseen.mqtt.address import parse_broker_url
from lastseen.mqtt.backoff import Backoff
from lastseen.mqtt.inbox import Chunk, Inbox
from lastseen.mqtt.instruments import MqttMetrics
from lastseen.mqtt.parser import CachedDecoder, Inbound, Kind, Reason, Rejected
from lastseen.mqtt.plan import Wave, waves
from lastseen.mqtt.subscriber import ConnectionLost, open_subscriber
from lastseen.mqtt.subscriber import Subscriber as InboundConnection
from lastseen.presence import Observation, Source
from lastseen.settings import Settings

log = logging.getLogger("lastseen.mqtt")

#: Inbound messages applied per batch: large enough to amortise the hub's commit,
#: small enough that the loop serves HTTP between batches.
BATCH = 2000
#: Retained messages in flight at once while republishing.
PUBLISH_WINDOW = 256
#: Room for the topic and headers of a PUBLISH above the payload limit, so an
#: oversize payload still arrives (and is counted) rather than being dropped unseen.
_PACKET_HEADROOM = 65_536 + 16
#: Seconds to wait for the broker's replay of retained presence on connect.
RETAINED_SYNC = 30.0
_ALL = StreamFilter()


class _Unsubscribe(Protocol):
    def unsubscribe(self, subscriber: Subscriber) -> None: ...


class PresenceHub(Protocol):
    """What the bridge uses of a hub: the public surface both hubs share."""

    @property
    def broadcaster(self) -> _Unsubscribe: ...

    async def heartbeat(
        self,
        device_id: str,
        *,
        source: Source = ...,
        attributes: Mapping[str, Any] | None = ...,
        metrics: Mapping[str, Any] | None = ...,
        register: bool = ...,
    ) -> object: ...

    async def heartbeat_statuses(
        self, items: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]]
    ) -> Sequence[object]: ...

    async def apply(
        self, device_id: str, observation: Observation, *, register: bool = ...
    ) -> object: ...

    async def open_stream(
        self, stream_filter: StreamFilter, after: int | None
    ) -> tuple[Subscriber, AsyncIterator[Message]]: ...

    async def read_snapshot(
        self, stream_filter: StreamFilter
    ) -> tuple[int, list[dict[str, Any]]]: ...


def subscriptions(settings: Settings) -> list[tuple[str, int]]:
    """The shared subscriptions of this instance's group."""
    share = f"$share/{settings.mqtt_group}/{settings.mqtt_prefix}+/"
    return [(share + kind.value, settings.mqtt_qos) for kind in Kind]


class MqttBridge:
    """Connects a hub to a broker; ``start`` returns at once, the connection is kept
    in the background."""

    name = "mqtt"

    def __init__(
        self,
        hub: PresenceHub,
        settings: Settings,
        registry: Registry,
        *,
        backoff: Backoff | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        if settings.mqtt is None:
            raise ValueError("the MQTT bridge needs settings.mqtt")
        self.hub = hub
        self.settings = settings
        self.address = parse_broker_url(settings.mqtt)
        self.client_id = settings.mqtt_client_id or f"lastseen-{secrets.token_hex(4)}"
        self.topics = outbound.Topics(
            prefix=settings.mqtt_prefix,
            discovery_prefix=settings.mqtt_discovery_prefix,
            stale_online=settings.mqtt_stale == "online",
            discovery=settings.mqtt_discovery,
        )
        self.backoff = backoff or Backoff()
        self._draw = draw
        self.connected = False
        self.metrics = MqttMetrics(registry, connected=lambda: self.connected, depth=self._depth)
        self.inbox = Inbox(settings.mqtt_queue, self.metrics.pauses.inc)
        self.maximum_packet = settings.mqtt_max_payload + _PACKET_HEADROOM
        self._parse = CachedDecoder(settings.mqtt_prefix, max_payload=settings.mqtt_max_payload)
        self._tasks: list[asyncio.Task[None]] = []
        self._tls: ssl.SSLContext | None = None
        if self.address.tls:
            cafile = str(settings.mqtt_ca) if settings.mqtt_ca else None
            self._tls = ssl.create_default_context(cafile=cafile)

    def _depth(self) -> int:
        return len(self.inbox)

    def ready(self) -> bool:
        """Connected and subscribed: what ``/readyz`` reports as ``mqtt``."""
        return self.connected

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._consume(), name="mqtt-inbound"),
            loop.create_task(self._run(), name="mqtt-connection"),
        ]

    async def stop(self) -> None:
        """Disconnect cleanly, then apply what is already queued (for at most 2 s)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.connected = False
        try:
            async with asyncio.timeout(2.0):
                while len(self.inbox):
                    await self._apply_chunks(self.inbox.take(BATCH))
        except TimeoutError:
            log.warning("event=mqtt_stop_dropped queued=%d", len(self.inbox))

    # ------------------------------------------------------------------ connection

    def _client(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self.address.host,
            self.address.port,
            username=self.address.username,
            password=self.address.password,
            identifier=f"{self.client_id}-out",
            protocol=ProtocolVersion.V5,
            keepalive=self.settings.mqtt_keepalive,
            tls_context=self._tls,
            max_inflight_messages=PUBLISH_WINDOW,
            timeout=10.0,
        )
        # A republish keeps a window of publishes pending on purpose.
        client.pending_calls_threshold = PUBLISH_WINDOW * 2
        return client

    async def _run(self) -> None:
        attempt = 0
        broker = self.address.redacted()
        while True:
            try:
                async with self._client() as client:
                    inbound = await self._subscribe()
                    try:
                        self.connected = True
                        self.metrics.connects.inc()
                        attempt = 0
                        log.info(
                            "event=mqtt_connected broker=%s client_id=%s group=%s prefix=%s",
                            broker,
                            self.client_id,
                            self.settings.mqtt_group,
                            self.settings.mqtt_prefix,
                        )
                        async with asyncio.TaskGroup() as group:
                            group.create_task(self._watch(client))
                            group.create_task(_until_closed(inbound))
                            group.create_task(self._publish_presence(client))
                            group.create_task(self._clear_orphans(client))
                    finally:
                        self.connected = False
                        inbound.close()
                        self.inbox.forget(inbound)
            except* (aiomqtt.MqttError, ConnectionLost) as failure:
                self._lost(broker, failure.exceptions[0], attempt)
            except* Exception as failure:  # never let the bridge die: log and retry
                log.exception("event=mqtt_failed broker=%s", broker, exc_info=failure)
                self._lost(broker, failure.exceptions[0], attempt)
            self.connected = False
            await asyncio.sleep(self.backoff.delay(attempt, self._draw()))
            attempt += 1

    def _lost(self, broker: str, exc: BaseException, attempt: int) -> None:
        self.connected = False
        self.metrics.connection_failures.inc()
        log.warning(
            "event=mqtt_disconnected broker=%s reason=%s attempt=%d",
            broker,
            str(exc).replace(" ", "_") or type(exc).__name__,
            attempt,
        )

    def _connect_packet(self, client_id: str) -> bytes:
        return codec.connect(
            client_id,
            keepalive=self.settings.mqtt_keepalive,
            username=self.address.username,
            password=self.address.password,
            # A fresh session each time, as before: what was in flight on a lost
            # connection is the broker's to drop (QoS 1 senders retry their own).
            clean_start=True,
            session_expiry=0,
            receive_maximum=min(65_535, self.settings.mqtt_queue),
            maximum_packet=self.maximum_packet,
        )

    async def _subscribe(self) -> InboundConnection:
        settings = self.settings
        return await open_subscriber(
            self.address.host,
            self.address.port,
            self.inbox.offer,
            connect=self._connect_packet(self.client_id),
            filters=subscriptions(settings),
            keepalive=settings.mqtt_keepalive,
            maximum_packet=self.maximum_packet,
            tls=self._tls,
        )

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        # Messages go to the inbox, never to this iterator: it only ends, with
        # MqttError, when the connection drops.
        async for _ in client.messages:  # pragma: no cover - nothing is ever yielded
            pass

    # ------------------------------------------------------------------ outbound

    async def _clear_orphans(self, client: aiomqtt.Client) -> None:
        """Clear the retained topics of devices deleted while the bridge was away.

        A third, short-lived connection (the lean subscriber, so a large fleet's replay
        is quick) subscribes to ``{prefix}+/presence``. Retained messages are sent to a
        new subscription before anything published after it, so a marker published
        once the subscription is granted arrives after the last of them: that is how
        the end of the replay is known. The ids found are then checked against a fresh
        snapshot, so a device created meanwhile keeps its topics. Best effort: a
        refused subscription or a replay longer than ``RETAINED_SYNC`` seconds clears
        nothing and is logged; it never ends the connection.
        """
        prefix = self.settings.mqtt_prefix
        marker = f"{prefix}$sync/{self.client_id}"
        found: list[str] = []
        done = asyncio.Event()

        def sink(_: object, publishes: list[codec.Publish]) -> None:
            for topic, payload, retained, _packet_id in publishes:
                if topic == marker:
                    done.set()
                elif retained and payload:
                    found.append(topic)

        try:
            sync = await open_subscriber(
                self.address.host,
                self.address.port,
                sink,
                connect=self._connect_packet(f"{self.client_id}-sync"),
                filters=[(f"{prefix}+/presence", 0), (marker, 0)],
                keepalive=self.settings.mqtt_keepalive,
                maximum_packet=self.maximum_packet,
                tls=self._tls,
            )
        except ConnectionLost as exc:
            log.warning("event=mqtt_retained_sync_failed reason=%s", str(exc).replace(" ", "_"))
            return
        try:
            await client.publish(marker, b"", qos=1)
            async with asyncio.timeout(RETAINED_SYNC):
                await done.wait()
        except TimeoutError:
            log.warning("event=mqtt_retained_sync_timeout seen=%d", len(found))
            return
        finally:
            sync.close()
        _, devices = await self.hub.read_snapshot(_ALL)
        deleted = outbound.orphans(self.topics, found, {d["id"] for d in devices})
        if deleted:
            log.info("event=mqtt_retained_cleared devices=%d", len(deleted))
            await self._send(client, [m for d in deleted for m in outbound.cleared(self.topics, d)])

    async def _publish_presence(self, client: aiomqtt.Client) -> None:
        while True:
            subscriber, _ = await self.hub.open_stream(_ALL, None)
            try:
                _, devices = await self.hub.read_snapshot(_ALL)
                self.metrics.resyncs.inc()
                await self._send(
                    client, [m for d in devices for m in outbound.from_device(self.topics, d)]
                )
                await self._follow(client, subscriber)
            finally:
                self.hub.broadcaster.unsubscribe(subscriber)

    async def _follow(self, client: aiomqtt.Client, subscriber: Subscriber) -> None:
        """Publish live changes until the stream resets (then the caller resyncs)."""
        while True:
            first = await subscriber.get()
            if first is None:
                if subscriber.closed:
                    return
                continue  # pragma: no cover - get() without a timeout only ends closed
            out: list[outbound.Retained] = []
            for kind, _seq, body in (first, *subscriber.drain()):
                if kind == TRANSITION:
                    out.extend(outbound.from_transition(self.topics, orjson.loads(body)))
                elif kind == DEVICE:
                    out.extend(self._device_message(orjson.loads(body)))
                elif kind == RESET:
                    await self._send(client, out)
                    return
            await self._send(client, out)

    def _device_message(self, body: Mapping[str, Any]) -> list[outbound.Retained]:
        action = body.get("action")
        if action == "deleted":
            return outbound.cleared(self.topics, body["device_id"])
        if action == "created" and "device" in body:
            return outbound.from_device(self.topics, body["device"])
        return []

    async def _send(self, client: aiomqtt.Client, messages: Sequence[outbound.Retained]) -> None:
        qos = self.settings.mqtt_qos
        published = self.metrics.published
        for start in range(0, len(messages), PUBLISH_WINDOW):
            chunk = messages[start : start + PUBLISH_WINDOW]
            await asyncio.gather(
                *(client.publish(m.topic, m.payload, qos=qos, retain=True) for m in chunk)
            )
            for message in chunk:
                published.inc(1.0, message.kind)

    # ------------------------------------------------------------------ inbound

    async def _consume(self) -> None:
        while True:
            await self.inbox.wait()
            await self._apply_chunks(self.inbox.take(BATCH))

    async def _apply_chunks(self, chunks: Sequence[Chunk]) -> None:
        """Apply, then acknowledge the QoS 1 messages on the connection they came on."""
        items = chunks[0][1] if len(chunks) == 1 else [p for _, ps in chunks for p in ps]
        try:
            await self.apply(items)
        except Exception:  # never let one bad batch end inbound processing
            log.exception("event=mqtt_batch_failed")
        # Acknowledged even after a failure: the message was processed, and an
        # unacknowledged one would hold a slot of the receive window for good.
        for feed, publishes in chunks:
            ids = [p[3] for p in publishes if p[3]]
            if ids:
                feed.ack(ids)

    def _decode(self, items: Sequence[codec.Publish]) -> list[Inbound]:
        decode = self._parse
        decoded: list[Inbound] = []
        for topic, payload, retained, _ in items:
            result = decode(topic, payload, retained)
            if isinstance(result, Rejected):
                self._reject(result.reason, result.device_id, result.detail)
            else:
                decoded.append(result)
        return decoded

    def _reject(self, reason: Reason, device_id: str | None, detail: str) -> None:
        self.metrics.rejected.inc(1.0, reason.value)
        log.debug("event=mqtt_rejected device=%s reason=%s detail=%r", device_id, reason, detail)

    async def apply(self, items: Sequence[codec.Publish]) -> None:
        """Decode and apply one batch of inbound messages (public for benchmarks)."""
        strict = self.settings.mqtt_strict
        for wave in waves(self._decode(items), batch_beats=not strict):
            calls = self._calls(wave)
            if len(calls) == 1:
                await calls[0]
            else:
                await asyncio.gather(*calls)

    def _calls(self, wave: Wave) -> list[Coroutine[Any, Any, None]]:
        calls = [self._one(message) for message in wave.others]
        if wave.beats:
            calls.append(self._beats(wave.beats))
        return calls

    async def _beats(self, beats: Sequence[Inbound]) -> None:
        items = [(m.device_id, m.attributes, m.metrics) for m in beats]
        results = await self._guard(self.hub.heartbeat_statuses(items), beats[0])
        if results is None:
            return
        if not isinstance(results, Sequence):
            results = [None] * len(beats)  # accepted, confirmation late (Unavailable)
        refused = 0
        for message, result in zip(beats, results, strict=True):
            if isinstance(result, InvalidInput):
                refused += 1
                self._reject(Reason.REFUSED, message.device_id, result.code)
        self.metrics.messages.inc(float(len(beats) - refused), Kind.HEARTBEAT.value)

    async def _one(self, message: Inbound) -> None:
        register = not self.settings.mqtt_strict
        call: Awaitable[object]
        if message.kind is Kind.STATUS:
            call = self.hub.apply(message.device_id, message.observation(), register=register)
        else:
            source = Source.TELEMETRY if message.kind is Kind.TELEMETRY else Source.HEARTBEAT
            call = self.hub.heartbeat(
                message.device_id,
                source=source,
                attributes=message.attributes,
                metrics=message.metrics,
                register=register,
            )
        if await self._guard(call, message) is not None:
            self.metrics.messages.inc(1.0, message.kind.value)

    async def _guard(self, call: Awaitable[Any], message: Inbound) -> Any:
        """Await a hub call; a refusal is counted and becomes None."""
        try:
            return await call
        except Unavailable:
            # Queued in the hub and committed later; only its confirmation is late.
            return True
        except NotFound:
            self._reject(Reason.UNKNOWN_DEVICE, message.device_id, "not registered")
        except LastseenError as exc:
            self._reject(Reason.REFUSED, message.device_id, exc.code)
        return None


async def _until_closed(inbound: InboundConnection) -> None:
    """Ends, with ConnectionLost, when the inbound connection does."""
    await inbound.closed
