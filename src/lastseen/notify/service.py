"""The notifier: consumes the hub's transitions, queues deliveries, sends them, runs alerts.

Three tasks on the hub's event loop, on either hub (it only uses the ``HubAPI``):

* the **consumer** reads the hub's transition feed (``HubAPI.transitions``),
  resuming after the cursor kept in the ``NotifyStore`` (so a restart misses
  nothing: the backfill comes from the hub's event history), feeds transitions to
  the alert engine and enqueues a delivery per matching subscription, moving the
  cursor in the same transaction;
* the **worker** claims due deliveries (bounded globally and per subscription, so a
  slow receiver holds only its own) and sends each in its own task;
* the **alert timer** sleeps until the engine's next deadline (or a wake-up), then
  lets the engine advance: precise timers, no polling.

In scale-out every instance runs all three over the same fleet-wide feed and the
same PostgreSQL store. Enqueueing is idempotent on (subscription, event id) and the
cursor only moves forward (``GREATEST``), so each instance may enqueue from its own
position; a claim leases a delivery to one instance (``FOR UPDATE SKIP LOCKED``), so
each is sent once (again only after a crash, with the same event id). Every
instance's engine computes the same alerts with the same keys; the store opens
each key once and only the instance whose insert won publishes and delivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx
import orjson

from lastseen.clock import Clock
from lastseen.errors import LastseenError
from lastseen.hub.feed import FeedEvent, FeedReset
from lastseen.notify.alerts import OPENED, AlertEngine
from lastseen.notify.devices import UNKNOWN, Facts, deleted, device_facts
from lastseen.notify.instruments import NotifyMetrics
from lastseen.notify.matching import wants_alert, wants_transition
from lastseen.notify.models import (
    Alert,
    AlertChange,
    AlertRule,
    Delivery,
    DeliveryStatus,
    NewDelivery,
    Subscription,
)
from lastseen.notify.payloads import alert_body, alert_json, transition_body
from lastseen.notify.policy import RetryPolicy, decide
from lastseen.notify.sender import attempt
from lastseen.notify.ssrf import AddressPolicy
from lastseen.notify.store import NotifyStore

if TYPE_CHECKING:
    from lastseen.hub.api import HubAPI

log = logging.getLogger("lastseen.notify")

ALERT = "alert"
#: Longest the worker sleeps without being woken (other instances enqueue too).
POLL_CAP = 1.0
#: Seconds between reloads of subscriptions and rules made by other instances.
RELOAD_INTERVAL = 5.0
#: Devices with alert state checked for deletion per reload (a read each; in turn).
FORGET_CHECKS = 1000
#: Seconds a stopping notifier lets its sends in flight finish.
STOP_GRACE = 2.0


class Notifier:
    """Webhooks and alerts for one hub (one instance, in scale-out)."""

    def __init__(
        self,
        hub: HubAPI,
        store: NotifyStore,
        *,
        config_rules: Sequence[AlertRule] = (),
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        settings = hub.settings
        self.hub = hub
        self.store = store
        self.clock = clock or hub.clock
        self.rand = rand
        self.policy = RetryPolicy(
            max_attempts=settings.webhook_max_attempts,
            max_age=settings.webhook_max_age,
            base=settings.webhook_backoff,
            cap=max(settings.webhook_backoff_max, settings.webhook_backoff),
            timeout=settings.webhook_timeout,
        )
        self.addresses = AddressPolicy.of(settings.webhook_allow_private, settings.webhook_allow)
        self.concurrency = settings.webhook_concurrency
        self.per_subscription = settings.webhook_subscription_concurrency
        self.max_queue = settings.webhook_max_queue
        self.config_rules = {rule.name: rule for rule in config_rules}
        self.api_rules: dict[str, AlertRule] = {}
        self.engine = AlertEngine()
        self.subscriptions: dict[str, Subscription] = {}
        self.counts: dict[DeliveryStatus, int] = dict.fromkeys(DeliveryStatus, 0)
        self.metrics = NotifyMetrics(hub.metrics.registry, self)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._in_flight: dict[int, str] = {}
        self._claimed: dict[int, Delivery] = {}
        self._senders: set[asyncio.Task[None]] = set()
        self._work = asyncio.Event()
        self._alarm = asyncio.Event()
        self._alert_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._engine_seq = 0
        self._forget_at = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the store, load subscriptions and rules, start the three tasks.
        The hub must already be started (its state seeds the alert engine)."""
        await self.store.open()
        await self.reload()
        self._client = httpx.AsyncClient(
            transport=self._transport,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=8),
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._consume(), name="notify-consumer"),
            loop.create_task(self._deliver(), name="notify-worker"),
            loop.create_task(self._alert_timer(), name="notify-alerts"),
        ]

    async def stop(self) -> None:
        """Stop the tasks. Sends in flight get ``STOP_GRACE`` seconds to finish; the
        rest are cancelled and their claims given back, so the next start (or another
        instance) sends them at once instead of after their lease."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._senders:
            await asyncio.wait(set(self._senders), timeout=STOP_GRACE)
        unfinished = list(self._claimed.values())
        for task in list(self._senders):
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        for delivery in unfinished:
            with contextlib.suppress(LastseenError):
                await self.store.release(delivery)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await self.store.close()

    async def reload(self) -> None:
        """Subscriptions and rules from the store (changed here or by another instance);
        the alerts of deleted devices resolve."""
        now = self.clock.now()
        # Delivered history lives as long as transition history (--event-retention).
        await self.store.prune(now - self.hub.settings.event_retention)
        gone = await self._deleted_devices()
        await self._alerts([c for d in gone for c in self.engine.forget(d, now)])
        self.subscriptions = {s.id: s for s in await self.store.list_subscriptions()}
        rules = {rule.name: rule for rule in await self.store.list_rules()}
        if rules != self.api_rules or not self._tasks:
            self.api_rules = rules
            await self._apply_rules()
        self.counts = await self.store.counts()

    async def _deleted_devices(self) -> list[str]:
        """Which of the next ``FORGET_CHECKS`` devices holding alert state (in turn, so
        every one is checked within a few reloads) were deleted. Bounded: on the
        shared hub each check is a Redis read."""
        devices = sorted(self.engine.devices())
        if not devices:
            return []
        start = self._forget_at % len(devices)
        chunk = (devices[start:] + devices[:start])[:FORGET_CHECKS]
        self._forget_at = start + len(chunk)
        return await deleted(self.hub, chunk)

    async def _apply_rules(self) -> None:
        now = self.clock.now()
        rules = {**self.api_rules, **self.config_rules}
        changes = self.engine.set_rules(rules.values(), now)
        # Only a device in a status some rule counts, or one the engine holds state
        # for, can start or end an episode: seeding any other would change nothing.
        # Not judged at now: the sweep's transitions come after ``seq``, on the feed.
        seq, devices = await self.hub.read_statuses(
            self.engine.episode_statuses(), self.engine.devices()
        )
        for device_id, labels, profile, status, since in devices:
            changes += self.engine.seed(device_id, labels, profile, status, since)
        self._engine_seq = seq
        if not self._tasks:
            changes += self.engine.restore(await self.store.open_alerts(), now)
        await self._alerts(changes)
        self._alarm.set()

    @property
    def rules(self) -> dict[str, AlertRule]:
        return {**self.api_rules, **self.config_rules}

    # ------------------------------------------------------------------ consumer

    async def _consume(self) -> None:
        while True:
            try:
                feed = self.hub.transitions(await self.store.cursor())
                async with contextlib.aclosing(feed):
                    async for batch in feed:
                        events: list[FeedEvent] = []
                        for item in batch:
                            if isinstance(item, FeedReset):
                                await self._handle(events)
                                events = []
                                await self._gap(item)
                            else:
                                events.append(item)
                        await self._handle(events)
                return  # the hub stopped
            except LastseenError as exc:
                # The store or the hub refused: start again from the stored cursor
                # (what was enqueued stays enqueued; enqueueing again is idempotent).
                log.error("event=notify_consumer_failed code=%s", exc.code)
                await asyncio.sleep(1.0)

    async def _gap(self, reset: FeedReset) -> None:
        log.warning(
            "event=notify_gap reason=%s seq=%d (transitions before it are not delivered)",
            reset.reason,
            reset.seq,
        )
        self.metrics.gaps.inc()
        await self.store.enqueue([], reset.seq)

    async def _handle(self, events: Sequence[FeedEvent]) -> None:
        if not events:
            return
        now = self.clock.now()
        deliveries: list[NewDelivery] = []
        changes: list[AlertChange] = []
        subs = [s for s in self.subscriptions.values() if s.enabled]
        facts: dict[str, Facts] = {}
        if subs or self.engine.rules:
            # Only routing needs them (a read per device: memory, or Redis in scale-out).
            facts = await device_facts(self.hub, {e.device_id for e in events})
        for event in events:
            device_id, seq = event.device_id, event.seq
            labels, profile = facts.get(device_id, UNKNOWN)
            if seq > self._engine_seq:
                self._engine_seq = seq
                changes += self.engine.observe(
                    device_id, labels, profile, event.from_status, event.to_status, event.at
                )
            for sub in subs:
                if wants_transition(
                    sub.filter, device_id, labels, profile, event.from_status, event.to_status
                ):
                    deliveries.append(
                        NewDelivery(
                            sub.id,
                            str(seq),
                            device_id,
                            transition_body(sub.format, event.body, labels, profile),
                            now,
                        )
                    )
        await self._enqueue(deliveries, events[-1].seq)
        if changes:
            await self._alerts(changes)
        self._alarm.set()

    def _admitted(self, deliveries: list[NewDelivery]) -> list[NewDelivery]:
        """The overflow policy: with the queue full, new deliveries are dropped (the
        queue keeps the oldest), counted, and said in the log."""
        backlog = self.counts[DeliveryStatus.PENDING] + self.counts[DeliveryStatus.SENDING]
        if deliveries and backlog >= self.max_queue:
            self.metrics.dropped.inc(float(len(deliveries)))
            log.warning("event=webhook_queue_full dropped=%d", len(deliveries))
            return []
        return deliveries

    def _enqueued(self, added: int) -> None:
        if added:
            self.counts[DeliveryStatus.PENDING] += added
            self.metrics.enqueued.inc(float(added))
            self._work.set()

    async def _enqueue(self, deliveries: list[NewDelivery], cursor: int | None) -> None:
        # A full queue drops the deliveries, but the cursor still moves on.
        self._enqueued(await self.store.enqueue(self._admitted(deliveries), cursor))

    # ------------------------------------------------------------------ alerts

    async def _alerts(self, changes: Sequence[AlertChange]) -> None:
        """Persist alert changes; publish and deliver the ones this instance won."""
        if not changes:
            return
        now = self.clock.now()
        enqueued = 0
        facts = await device_facts(self.hub, {c.alert.device_id for c in changes})
        async with self._alert_lock:
            for change in changes:
                device = facts.get(change.alert.device_id, UNKNOWN)

                def deliveries(
                    stored: Alert, action: str = change.action, device: Facts = device
                ) -> list[NewDelivery]:
                    nonlocal enqueued
                    built = self._admitted(self._alert_deliveries(action, stored, device, now))
                    enqueued += len(built)
                    return built

                # The alert and its deliveries are one transaction: a crash keeps both
                # or neither (and then the alert opens again after the restart).
                stored: Alert | None
                if change.action == OPENED:
                    stored = await self.store.open_alert(change.alert, deliveries)
                else:
                    stored = await self.store.resolve_alert(change.alert, deliveries)
                if stored is None:
                    continue  # already recorded (another instance, or before a restart)
                self.metrics.alerts.inc(1.0, stored.rule, change.action)
                log.info(
                    "event=alert_%s rule=%s device=%s reason=%s",
                    change.action,
                    stored.rule,
                    stored.device_id,
                    stored.reason.replace(" ", "_"),
                )
                await self._publish_alert(change.action, stored, device)
        self._enqueued(enqueued)

    async def _publish_alert(self, action: str, alert: Alert, device: Facts) -> None:
        """To stream subscribers (every instance's, in scale-out). Best effort: the
        alert is stored and its webhooks queued whether or not this reaches them."""
        body = orjson.dumps({"type": ALERT, "action": action, "alert": alert_json(alert)})
        try:
            await self.hub.announce(ALERT, alert.device_id, device[0], body)
        except LastseenError as exc:
            log.warning("event=alert_publish_failed code=%s device=%s", exc.code, alert.device_id)

    def _alert_deliveries(
        self, action: str, alert: Alert, device: Facts, now: float
    ) -> list[NewDelivery]:
        labels, profile = device
        event_id = f"alert:{alert.key}:{action}"
        return [
            NewDelivery(
                sub.id,
                event_id,
                alert.device_id,
                alert_body(sub.format, action, alert, event_id),
                now,
            )
            for sub in self.subscriptions.values()
            if sub.enabled and wants_alert(sub.filter, alert.device_id, labels, profile, alert.rule)
        ]

    async def _alert_timer(self) -> None:
        while True:
            deadline = self.engine.next_deadline()
            self._alarm.clear()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._alarm.wait()
            try:
                await self._alerts(self.engine.advance(self.clock.now()))
            except LastseenError as exc:
                log.error("event=alert_failed code=%s", exc.code)
                await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ worker

    async def _deliver(self) -> None:
        last_reload = self.clock.now()
        while True:
            try:
                now = self.clock.now()
                if now - last_reload >= RELOAD_INTERVAL:
                    last_reload = now
                    await self.reload()
                claimed: list[Delivery] = []
                room = self.concurrency - len(self._in_flight)
                if room > 0:
                    per_sub: dict[str, int] = {}
                    for sub_id in self._in_flight.values():
                        per_sub[sub_id] = per_sub.get(sub_id, 0) + 1
                    claimed = await self.store.claim(
                        now, room, self.policy.lease, per_sub, self.per_subscription
                    )
                for delivery in claimed:
                    self._spawn(delivery)
                due = await self.store.next_due()
            except LastseenError as exc:
                log.error("event=webhook_worker_failed code=%s", exc.code)
                claimed, due = [], self.clock.now() + POLL_CAP
            if claimed:
                continue
            wait = POLL_CAP if due is None else min(POLL_CAP, max(0.0, due - self.clock.now()))
            if wait <= 0.0:
                # Due but not claimable (waiting behind an earlier delivery of its
                # device, or its subscription is busy): a finishing send wakes us.
                wait = POLL_CAP
            self._work.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._work.wait()

    def _spawn(self, delivery: Delivery) -> None:
        self._in_flight[delivery.id] = delivery.subscription_id
        self._claimed[delivery.id] = delivery
        task = asyncio.get_running_loop().create_task(self._send(delivery))
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    async def _send(self, delivery: Delivery) -> None:
        try:
            subscription = self.subscriptions.get(delivery.subscription_id)
            if subscription is None:
                subscription = await self.store.get_subscription(delivery.subscription_id)
                if subscription is None:
                    self._claimed.pop(delivery.id, None)
                    return  # deleted with its deliveries meanwhile
            assert self._client is not None
            result = await attempt(
                self._client,
                subscription,
                delivery,
                self.addresses,
                self.policy.timeout,
                self.clock.now(),
            )
            decision = decide(
                self.policy, result, delivery.attempts, delivery.created_at, self.rand
            )
            won = await self.store.finish(delivery, result, decision)
            self._claimed.pop(delivery.id, None)
            self.metrics.attempt_seconds.observe(result.duration)
            outcome = decision.status.value if won else "lost"
            if decision.status is DeliveryStatus.PENDING:
                outcome = "retry" if won else outcome
                self.metrics.retries.inc()
            self.metrics.deliveries.inc(1.0, outcome)
            if won and decision.status is not DeliveryStatus.PENDING:
                self.counts[DeliveryStatus.PENDING] = max(
                    0, self.counts[DeliveryStatus.PENDING] - 1
                )
                self.counts[decision.status] += 1
            if won and decision.status is DeliveryStatus.DELIVERED:
                self.metrics.latency.observe(
                    max(0.0, result.at + result.duration - delivery.created_at)
                )
            level = logging.INFO if result.ok else logging.WARNING
            log.log(
                level,
                "event=webhook_%s webhook=%s delivery=%d event_id=%s device=%s attempt=%d "
                "status=%s reason=%s",
                outcome,
                subscription.id,
                delivery.id,
                delivery.event_id,
                delivery.device_id,
                delivery.attempts,
                result.status,
                (result.error or "-").replace(" ", "_")[:200],
            )
        except LastseenError as exc:
            self._claimed.pop(delivery.id, None)
            log.error("event=webhook_send_failed delivery=%d code=%s", delivery.id, exc.code)
        finally:
            self._in_flight.pop(delivery.id, None)
            self._work.set()

    # ------------------------------------------------------------------ API helpers

    async def create(self, subscription: Subscription) -> Subscription:
        await self.store.put_subscription(subscription)
        self.subscriptions[subscription.id] = subscription
        return subscription

    async def update(self, subscription: Subscription) -> Subscription:
        updated = replace(subscription, updated_at=self.clock.now())
        await self.store.put_subscription(updated)
        self.subscriptions[updated.id] = updated
        return updated

    async def delete(self, subscription_id: str) -> bool:
        self.subscriptions.pop(subscription_id, None)
        deleted = await self.store.delete_subscription(subscription_id)
        self.counts = await self.store.counts()
        return deleted

    async def replay(self, subscription_id: str, delivery_id: int | None) -> int:
        count = await self.store.replay(subscription_id, delivery_id, self.clock.now())
        if count:
            self.counts = await self.store.counts()
            self._work.set()
        return count

    async def put_rule(self, rule: AlertRule) -> None:
        await self.store.put_rule(rule)
        self.api_rules[rule.name] = rule
        await self._apply_rules()

    async def delete_rule(self, name: str) -> bool:
        deleted = await self.store.delete_rule(name)
        if self.api_rules.pop(name, None) is not None:
            await self._apply_rules()
        return deleted


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def new_id() -> str:
    return "wh_" + secrets.token_hex(8)
