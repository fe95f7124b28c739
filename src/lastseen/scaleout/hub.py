"""The shared hub: one of many identical instances over Redis and a durable store.

Each instance holds no presence of its own. Every write is one script call that
applies the presence rules inside Redis (``scaleout/lua.py``); every read asks Redis.
A heartbeat acknowledged by any instance is therefore visible on every other at once
(seed 000). Background tasks, run by every instance alike (none is special):

* the sweeper claims and fires due deadlines (``scaleout/sweeper.py``),
* the fan-out reads the event stream into this instance's subscribers
  (``scaleout/fanout.py``),
* the outbox drains the stream into the durable store (``scaleout/outbox.py``),
* the ``seen`` ticker sends last_seen updates to this instance's subscribers
  (``scaleout/seen.py``).

Devices, keys and audit records are administrative writes: they go to the store
directly. Presence reaches the store only through the outbox, so a store outage
never stops presence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping, Sequence
from typing import Any

import orjson

from lastseen.clock import Clock, SystemClock
from lastseen.errors import InvalidInput, NotFound
from lastseen.hub.api import BatchItem, DeviceStatus
from lastseen.hub.broadcast import DEVICE, Broadcaster, Message, StreamFilter, Subscriber
from lastseen.hub.core import MAX_ATTRIBUTES, BeatResult, check_profile
from lastseen.hub.feed import FeedItem, transition_feed
from lastseen.presence import (
    Observation,
    Profile,
    Source,
    Status,
    check_observation,
    next_deadline,
)
from lastseen.retention import prune_forever
from lastseen.scaleout import lua
from lastseen.scaleout.coalesce import Coalescer
from lastseen.scaleout.codec import (
    hash_fields,
    profile_spec,
    state_from_reply,
)
from lastseen.scaleout.connection import OUTAGE, connect, is_cluster, reading, translated
from lastseen.scaleout.fanout import FanOut
from lastseen.scaleout.instruments import ScaleoutMetrics
from lastseen.scaleout.keys import Keys
from lastseen.scaleout.outbox import Outbox
from lastseen.scaleout.reads import DeviceReads
from lastseen.scaleout.seen import SeenTicker
from lastseen.scaleout.streams import StreamReader
from lastseen.scaleout.sweeper import Sweeper
from lastseen.settings import Settings
from lastseen.store import Batch, DeviceQuery, DeviceRecord, Store
from lastseen.wire import device_json

log = logging.getLogger("lastseen.scaleout")

#: Events kept in the stream at most (overflow policy: drop-oldest, counted by the
#: outbox as lost if they never reached the store). ~250 bytes each in Redis.
STREAM_MAX = 1_000_000
#: Ids fetched per round trip when listing or snapshotting.
_PAGE = 500
#: Pooled Redis connections opened at start (see ``_warm``).
WARM_CONNECTIONS = 16
#: Stream opens and snapshots in flight at once. A burst of subscribers (every
#: dashboard reconnecting after a deploy) queues here instead of asking the pool for a
#: new connection each, every connect under the 0.5 s timeout on a loop busy with the
#: burst: measured, 100 WebSocket subscribers connecting together got 503s that way.
STREAM_OPENS = 8
#: Script calls in flight at once for a batch on a cluster.
_CLUSTER_CONCURRENCY = 64


class RedisHub:
    """Presence for the whole fleet, shared by every instance through Redis."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        redis_url: str,
        *,
        prefix: str = "ls",
        clock: Clock | None = None,
        cluster: bool = False,
        stream_max: int = STREAM_MAX,
        background: bool = True,
        script_clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.profiles = settings.profiles
        self.store = store
        self.clock = clock or SystemClock()
        self.started_at = time.time()
        self.keys = Keys(prefix)
        self.redis_url = redis_url
        self.cluster = cluster or is_cluster(redis_url)
        self.stream_max = stream_max
        self.background = background
        #: Tests only: a clock that replaces Redis's ``TIME`` in every script and read,
        #: so contract tests move time by hand. Production never sets it: there Redis's
        #: clock is the only clock (hosts with skewed clocks agree).
        self.script_clock = script_clock
        self.redis: Any = connect(redis_url, cluster=self.cluster)
        self.metrics = ScaleoutMetrics(self)
        self.broadcaster = Broadcaster(
            replay_size=settings.replay_buffer,
            queue_size=settings.subscriber_queue,
            on_overflow=self.metrics.subscriber_resets.inc,
        )
        self._observe = self.redis.register_script(lua.OBSERVE)
        self._put = self.redis.register_script(lua.PUT)
        self._delete = self.redis.register_script(lua.DELETE)
        self._seed = self.redis.register_script(lua.SEED_SEQ)
        self.read_script = self.redis.register_script(lua.READ)
        self._restore_script = self.redis.register_script(lua.RESTORE)
        self._device_message = self.redis.register_script(lua.DEVICE_MESSAGE)
        # Pipelines cannot carry scripts on a cluster: there, each call goes alone.
        self._coalescer = None if self.cluster else Coalescer(self.redis, self._observe)
        self.status_counts: dict[str, int] = dict.fromkeys((s.value for s in Status), 0)
        self.published_seq = 0
        self.outbox_backlog = 0
        self.fanout = FanOut(self)
        self.sweeper = Sweeper(self)
        self.outbox = Outbox(self)
        self.reader = StreamReader(self)
        self.reads = DeviceReads(self)
        self.seen = SeenTicker(self)
        self._tasks: list[asyncio.Task[None]] = []
        self.stopped = False
        #: Set at stop: the loops finish their current Redis call and end (cancelling
        #: a call mid-flight would strand its connection).
        self.stopping = asyncio.Event()
        self._default_spec = profile_spec(self.profiles.default)
        self._opening = asyncio.Semaphore(STREAM_OPENS)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the store, seed the seq from it (so a Redis that lost its data never
        reuses a seq), start the background tasks."""
        await self.store.open()
        floor = await self.store.last_seq()
        with translated():
            seq = int(await self._seed(keys=[self.keys.seq], args=[floor]))
        self.published_seq = seq
        await self._warm()
        restored = await self._restore()
        log.info("event=started mode=redis seq=%d store_seq=%d restored=%d", seq, floor, restored)
        if not self.background:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.fanout.run(seq), name="fanout"),
            loop.create_task(self.sweeper.run(), name="sweeper"),
            loop.create_task(self.outbox.run(), name="outbox"),
            loop.create_task(self.seen.run(), name="seen"),
            loop.create_task(
                prune_forever(
                    "events", self.store.prune_events, self.settings.event_retention, self.clock
                ),
                name="pruner",
            ),
        ]

    async def _warm(self) -> None:
        """Open ``WARM_CONNECTIONS`` pooled connections now, so a first burst of requests
        finds them open instead of connecting all at once (see ``STREAM_OPENS``)."""
        if self.cluster:
            return  # the cluster client keeps its connections per node
        with translated():
            await asyncio.gather(*(self.redis.ping() for _ in range(WARM_CONNECTIONS)))

    async def _restore(self) -> int:
        """A Redis without devices while the store has some lost its data (no AOF, a
        new server): put the stored devices back, profiles and labels included, so
        their deadlines run again. Devices already in Redis are never overwritten."""
        with translated():
            if await self.redis.zcard(self.keys.ids):
                return 0
        restored = 0
        k = self.keys
        for record in await self.store.load_devices():
            profile = self.profile(record.profile)
            fields = hash_fields(record, profile)
            deadline = next_deadline(record.state, profile)
            attributes = [
                item for key, v in record.attributes.items() for item in (key, orjson.dumps(v))
            ]
            with translated():
                restored += await self._restore_script(
                    keys=[
                        k.device(record.id),
                        k.attributes(record.id),
                        k.deadlines,
                        k.ids,
                        k.counts,
                    ],
                    args=[
                        record.id,
                        len(fields) // 2,
                        *fields,
                        "" if deadline is None else repr(deadline),
                        record.state.status.value,
                        *attributes,
                    ],
                )
        if restored:
            log.warning("event=redis_restored devices=%d reason=redis_had_no_devices", restored)
        return restored

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.stopping.set()
        # The fan-out blocks in XREAD on its own connection and the pruner only
        # touches the store: cancel those outright.
        for task in self._tasks:
            if task.get_name() in {"fanout", "pruner"}:
                task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.broadcaster.close_all()
        await self.outbox.release()
        await self.redis.aclose()
        await self.store.close()

    async def pause(self, seconds: float) -> None:
        """Sleep, or return at once when the hub stops."""
        try:
            async with asyncio.timeout(seconds):
                await self.stopping.wait()
        except TimeoutError:
            pass

    def now_override(self) -> str:
        """The ``now`` argument of a script: empty (Redis's ``TIME``) unless a test clock
        is set."""
        return "" if self.script_clock is None else repr(self.script_clock.now())

    def profile(self, name: str) -> Profile:
        if name in self.profiles:
            return self.profiles.get(name)
        return self.profiles.default

    # ------------------------------------------------------------------ writes

    def _observe_args(
        self,
        device_id: str,
        observation: Observation,
        register: bool,
        attributes: Mapping[str, Any] | None,
        metrics: Mapping[str, Any] | None,
    ) -> list[Any]:
        args: list[Any] = [
            device_id,
            observation.source.value,
            "" if observation.session is None else observation.session,
            "" if observation.status is None else observation.status.value,
            "1" if observation.ok else "0",
            "1" if register else "0",
            orjson.dumps(dict(metrics)).decode() if metrics else "",
            self._default_spec,
            self.stream_max,
            MAX_ATTRIBUTES,
            self.now_override(),
        ]
        if attributes:
            for key, value in attributes.items():
                args += (key, orjson.dumps(value))
        return args

    def _result(self, device_id: str, reply: Sequence[Any]) -> BeatResult:
        if reply[0] == "err":
            code = reply[1]
            if code == "not_found":
                raise NotFound(f"no device {device_id!r}")
            raise InvalidInput(
                f"device {device_id!r} would have more than {MAX_ATTRIBUTES} attributes",
                code=code,
            )
        state, profile, _ = state_from_reply(reply)
        return BeatResult(device_id, state, self.profile(profile))

    async def _run_observe(
        self,
        device_id: str,
        observation: Observation,
        *,
        register: bool,
        attributes: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> BeatResult:
        check_observation(observation)
        args = self._observe_args(device_id, observation, register, attributes, metrics)
        with translated():
            if self._coalescer is not None:
                reply = await self._coalescer.call(self.keys.observe_keys(device_id), args)
            else:
                reply = await self._observe(keys=self.keys.observe_keys(device_id), args=args)
        return self._result(device_id, reply)

    async def heartbeat(
        self,
        device_id: str,
        *,
        source: Source = Source.HEARTBEAT,
        attributes: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        register: bool = True,
    ) -> BeatResult:
        """A sign of life: one script call, one round trip."""
        result = await self._run_observe(
            device_id,
            Observation(source),
            register=register,
            attributes=attributes,
            metrics=metrics,
        )
        self.metrics.heartbeats.inc(1.0, source.value)
        return result

    async def heartbeats(self, items: Sequence[BatchItem]) -> list[BeatResult | InvalidInput]:
        """A batch in one pipelined round trip; each item is its own atomic script."""
        observation = Observation(Source.HEARTBEAT)
        calls = [
            (
                self.keys.observe_keys(device_id),
                self._observe_args(device_id, observation, True, a, m),
            )
            for device_id, a, m in items
        ]
        with translated():
            if self.cluster:
                # A cluster pipeline refuses scripts: concurrent calls, a bounded number
                # in flight (each still one atomic script).
                replies: list[Any] = []
                for start in range(0, len(calls), _CLUSTER_CONCURRENCY):
                    chunk = calls[start : start + _CLUSTER_CONCURRENCY]
                    replies += await asyncio.gather(
                        *(self._observe(keys=k, args=a) for k, a in chunk)
                    )
            else:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for keys, args in calls:
                        await self._observe(keys=keys, args=args, client=pipe)
                    replies = await pipe.execute() if calls else []
        results: list[BeatResult | InvalidInput] = []
        for (device_id, _, _), reply in zip(items, replies, strict=True):
            try:
                results.append(self._result(device_id, reply))
            except InvalidInput as exc:
                results.append(exc)
        applied = sum(isinstance(r, BeatResult) for r in results)
        self.metrics.heartbeats.inc(float(applied), Source.HEARTBEAT.value)
        return results

    async def heartbeat_statuses(self, items: Sequence[BatchItem]) -> list[Status | InvalidInput]:
        results = await self.heartbeats(items)
        return [r if isinstance(r, InvalidInput) else r.status for r in results]

    async def apply(
        self, device_id: str, observation: Observation, *, register: bool = False
    ) -> BeatResult:
        return await self._run_observe(device_id, observation, register=register)

    async def put_device(
        self,
        device_id: str,
        *,
        profile: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> tuple[DeviceRecord, bool]:
        """Register or update a device in Redis, then in the store (an admin write)."""
        check_profile(self.profiles, profile)
        args = [
            device_id,
            self._default_spec,
            profile_spec(self.profiles.get(profile)) if profile is not None else "",
            orjson.dumps(dict(labels)).decode() if labels is not None else "",
            self.now_override(),
            self.stream_max,
        ]
        with translated():
            reply = await self._put(keys=self.keys.observe_keys(device_id), args=args)
        created = reply[-1] == "1"
        record = await self.reads.record(device_id)
        if record is None:  # deleted meanwhile by another instance
            raise NotFound(f"no device {device_id!r}")
        await self.store.apply(Batch(upserts=[record]))
        body = {
            "type": DEVICE,
            "action": "created" if created else "updated",
            "device_id": device_id,
            "device": device_json(record, self.profile(record.profile)),
        }
        await self._publish_device(device_id, body, record.labels)
        return record, created

    async def delete_device(self, device_id: str) -> None:
        k = self.keys
        with translated():
            found = await self._delete(
                keys=[
                    k.device(device_id),
                    k.attributes(device_id),
                    k.deadlines,
                    k.ids,
                    k.dirty,
                    k.counts,
                    k.seen,
                ],
                args=[device_id],
            )
        if not found:
            raise NotFound(f"no device {device_id!r}")
        await self.store.apply(Batch(deletes=[device_id]))
        body = {"type": DEVICE, "action": "deleted", "device_id": device_id}
        await self._publish_device(device_id, body, {})

    async def _publish_device(
        self, device_id: str, body: Mapping[str, Any], labels: Mapping[str, str]
    ) -> None:
        """Through the stream, so every instance's subscribers get it (fanout.py)."""
        k = self.keys
        with translated():
            await self._device_message(
                keys=[k.seq, k.stream],
                args=[
                    orjson.dumps(body).decode(),
                    orjson.dumps(dict(labels)).decode(),
                    device_id,
                    self.stream_max,
                ],
            )

    # ------------------------------------------------------------------ reads

    async def read_device(self, device_id: str) -> tuple[DeviceRecord, Profile]:
        return await self.reads.read_device(device_id)

    async def list_devices(
        self, query: DeviceQuery
    ) -> tuple[list[tuple[DeviceRecord, Profile]], str | None, int]:
        return await self.reads.list_devices(query)

    async def read_snapshot(self, stream_filter: StreamFilter) -> tuple[int, list[dict[str, Any]]]:
        async with self._opening:
            return await self.reads.read_snapshot(stream_filter)

    async def read_statuses(
        self, statuses: Collection[Status], ids: Collection[str] = ()
    ) -> tuple[int, list[DeviceStatus]]:
        async with self._opening:
            return await self.reads.read_statuses(statuses, ids)

    async def knows(self, device_id: str) -> bool:
        with translated():
            return bool(await reading(lambda: self.redis.exists(self.keys.device(device_id))))

    async def profile_of(self, device_id: str) -> Profile | None:
        with translated():
            name = await reading(lambda: self.redis.hget(self.keys.device(device_id), "pn"))
        return None if name is None else self.profile(name)

    async def device_count(self) -> int:
        with translated():
            return int(await reading(lambda: self.redis.zcard(self.keys.ids)))

    async def current_seq(self) -> int:
        with translated():
            return int(await reading(lambda: self.redis.get(self.keys.seq)) or 0)

    async def ready(self) -> str | None:
        try:
            async with asyncio.timeout(0.5):
                await reading(self.redis.ping)
        except (*OUTAGE, Exception):
            return "redis"
        return None

    # ------------------------------------------------------------------ streams

    async def open_stream(
        self, stream_filter: StreamFilter, after: int | None
    ) -> tuple[Subscriber, AsyncIterator[Message]]:
        async with self._opening:
            return await self.reader.open(stream_filter, after)

    def transitions(self, after: int) -> AsyncGenerator[list[FeedItem], None]:
        """Every transition with seq > ``after`` fleet-wide, then live, in batches: the
        backfill comes from the Redis stream (or the store), the live part from this
        instance's fan-out (hub/feed.py)."""

        async def open_tap(position: int) -> tuple[Subscriber, AsyncIterator[Message]]:
            return await self.reader.open(StreamFilter(), position, tap=True)

        def failed(exc: Exception) -> None:
            self.metrics.redis_errors.inc(1.0, "feed")

        return transition_feed(open_tap, self.broadcaster, after, lambda: self.stopped, failed)

    async def announce(
        self, kind: str, device_id: str, labels: Mapping[str, str], body: bytes
    ) -> None:
        """A message about one device (an alert) to the matching stream subscribers of
        every instance, through the event stream (fanout.py)."""
        k = self.keys
        with translated():
            await self._device_message(
                keys=[k.seq, k.stream],
                args=[
                    body.decode(),
                    orjson.dumps(dict(labels)).decode(),
                    device_id,
                    self.stream_max,
                    kind,
                ],
            )
