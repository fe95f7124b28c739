"""One contract for every NotifyStore: SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lastseen.notify.models import (
    Alert,
    AlertKind,
    AlertRule,
    AlertState,
    Attempt,
    DeliveryStatus,
    NewDelivery,
    Subscription,
)
from lastseen.notify.policy import Decision
from lastseen.notify.postgres import PostgresNotifyStore
from lastseen.notify.sqlite import SQLiteNotifyStore
from lastseen.notify.store import NotifyStore

pytestmark = pytest.mark.anyio
T0 = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[NotifyStore]:
    if request.param == "sqlite":
        found: NotifyStore = SQLiteNotifyStore(tmp_path / "n.db")
    else:
        found = PostgresNotifyStore(request.getfixturevalue("postgres_dsn"))
    await found.open()
    try:
        yield found
    finally:
        await found.close()


def _new(sub: str, event: str, device: str = "d1") -> NewDelivery:
    return NewDelivery(sub, event, device, b'{"x":1}', T0)


async def test_subscriptions_round_trip(store: NotifyStore) -> None:
    sub = Subscription("wh_1", "https://example.com/h", "s3cret", headers={"X-A": "b"})
    await store.put_subscription(sub)
    assert await store.get_subscription("wh_1") == sub
    assert await store.list_subscriptions() == [sub]
    assert await store.delete_subscription("wh_1")
    assert not await store.delete_subscription("wh_1")
    assert await store.get_subscription("wh_1") is None


async def test_enqueue_is_idempotent_and_moves_the_cursor(store: NotifyStore) -> None:
    assert await store.cursor() == 0
    assert await store.enqueue([_new("a", "1"), _new("b", "1")], 1) == 2
    assert await store.enqueue([_new("a", "1"), _new("a", "2")], 2) == 1
    await store.enqueue([], 1)  # never backwards
    assert await store.cursor() == 2
    assert (await store.counts())[DeliveryStatus.PENDING] == 3


async def test_claims_are_exclusive_and_keep_device_order(store: NotifyStore) -> None:
    await store.enqueue([_new("a", "1"), _new("a", "2"), _new("a", "3", "d2")], 3)
    first = await store.claim(T0, 10, 30.0, {}, 10)
    assert sorted(d.event_id for d in first) == ["1", "3"]  # "2" waits behind "1"
    assert all(d.attempts == 1 for d in first)
    assert await store.claim(T0, 10, 30.0, {}, 10) == []
    one = next(d for d in first if d.event_id == "1")
    ok = Attempt(T0, 0.01, status=204)
    assert await store.finish(one, ok, Decision(DeliveryStatus.DELIVERED))
    assert not await store.finish(one, ok, Decision(DeliveryStatus.DELIVERED))  # CAS
    (second,) = await store.claim(T0, 10, 30.0, {}, 10)
    assert second.event_id == "2"


async def test_per_subscription_cap_and_lapsed_leases(store: NotifyStore) -> None:
    await store.enqueue([_new("a", str(i), f"d{i}") for i in range(5)], 5)
    assert len(await store.claim(T0, 10, 30.0, {"a": 2}, 3)) == 1
    # The lease lapses: another worker takes the delivery over, the first loses.
    taken = await store.claim(T0 + 31, 10, 30.0, {}, 10)
    assert len(taken) == 5


async def test_a_released_claim_is_due_again_with_its_attempt_count(store: NotifyStore) -> None:
    await store.enqueue([_new("a", "1")], 1)
    (d,) = await store.claim(T0, 1, 30.0, {}, 4)
    assert await store.release(d)
    assert not await store.release(d)
    (again,) = await store.claim(T0, 1, 30.0, {}, 4)
    assert again.attempts == 1


async def test_retry_dead_and_replay(store: NotifyStore) -> None:
    await store.enqueue([_new("a", "1")], 1)
    (d,) = await store.claim(T0, 1, 30.0, {}, 4)
    failed = Attempt(T0, 0.1, status=500, response="no")
    assert await store.finish(d, failed, Decision(DeliveryStatus.PENDING, T0 + 5))
    assert await store.claim(T0 + 1, 1, 30.0, {}, 4) == []
    assert await store.next_due() == pytest.approx(T0 + 5)
    (d,) = await store.claim(T0 + 5, 1, 30.0, {}, 4)
    assert d.attempts == 2
    assert await store.finish(d, failed, Decision(DeliveryStatus.DEAD))
    (dead,) = await store.deliveries("a", DeliveryStatus.DEAD, 10)
    assert (dead.last_status, dead.last_response) == (500, "no")
    assert await store.replay("a", None, T0 + 9) == 1
    (again,) = await store.claim(T0 + 9, 1, 30.0, {}, 4)
    assert again.attempts == 1
    assert await store.get_delivery(again.id) is not None
    assert await store.finish(
        again, Attempt(T0 + 9, 0.5, status=200), Decision(DeliveryStatus.DELIVERED)
    )
    assert await store.prune(T0 + 9) == 0
    assert await store.prune(T0 + 10) == 1
    assert await store.get_delivery(again.id) is None


async def test_alerts_open_once_and_resolve_once(store: NotifyStore) -> None:
    alert = Alert("r/d1/1", "r", AlertKind.OFFLINE_FOR, "d1", AlertState.OPEN, T0, reason="x")
    opened = await store.open_alert(alert)
    assert opened is not None
    assert opened.id > 0
    assert await store.open_alert(alert) is None
    assert [a.key for a in await store.open_alerts()] == ["r/d1/1"]
    done = Alert("r/d1/1", "r", AlertKind.OFFLINE_FOR, "d1", AlertState.RESOLVED, T0, T0 + 3, "y")
    resolved = await store.resolve_alert(done)
    assert resolved is not None
    assert resolved.state is AlertState.RESOLVED
    assert await store.resolve_alert(done) is None
    assert await store.alerts(AlertState.OPEN, 10) == []
    assert [a.resolved_at for a in await store.alerts(AlertState.RESOLVED, 10)] == [T0 + 3]


async def test_rules_round_trip(store: NotifyStore) -> None:
    rule = AlertRule("gone", AlertKind.OFFLINE_FOR, duration=2.0)
    await store.put_rule(rule)
    assert await store.list_rules() == [rule]
    assert await store.delete_rule("gone")
    assert await store.list_rules() == []


async def test_an_alert_and_its_deliveries_are_written_together(store: NotifyStore) -> None:
    alert = Alert("r/d1/1", "r", AlertKind.OFFLINE_FOR, "d1", AlertState.OPEN, T0, reason="x")
    built: list[Alert] = []

    def deliveries(stored: Alert) -> list[NewDelivery]:
        built.append(stored)
        return [_new("a", f"alert:{stored.key}:{stored.state.value}")]

    def broken(stored: Alert) -> list[NewDelivery]:
        raise RuntimeError("crashed between the alert and its deliveries")

    with pytest.raises(RuntimeError):
        await store.open_alert(alert, broken)
    assert await store.open_alerts() == []  # rolled back with the deliveries
    opened = await store.open_alert(alert, deliveries)
    assert opened is not None
    assert built == [opened]  # built from the alert as stored, with its id
    assert await store.open_alert(alert, deliveries) is None
    assert len(built) == 1  # an alert that was already open enqueues nothing
    done = Alert("r/d1/1", "r", AlertKind.OFFLINE_FOR, "d1", AlertState.RESOLVED, T0, T0 + 3, "y")
    with pytest.raises(RuntimeError):
        await store.resolve_alert(done, broken)
    assert [a.key for a in await store.open_alerts()] == ["r/d1/1"]  # still open
    assert await store.resolve_alert(done, deliveries) is not None
    queued = await store.deliveries("a", DeliveryStatus.PENDING, 10)
    assert [d.event_id for d in queued] == ["alert:r/d1/1:resolved", "alert:r/d1/1:open"]
