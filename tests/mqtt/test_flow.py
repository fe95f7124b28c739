"""Keep-alive timing and the inbox's back-pressure, with no broker and no clock."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from lastseen.mqtt.inbox import Inbox
from lastseen.mqtt.keepalive import Due, KeepAlive

pytestmark = pytest.mark.anyio


def test_a_quiet_connection_pings_after_the_interval() -> None:
    keep = KeepAlive(10, now=100.0)
    assert keep.deadline() == 110.0
    assert keep.due(109.9) is Due.NOTHING
    assert keep.due(110.0) is Due.PING
    assert keep.deadline() == 120.0  # waiting for the answer


def test_traffic_sent_postpones_the_ping() -> None:
    keep = KeepAlive(10, now=0.0)
    keep.sent(8.0)  # a PUBACK
    assert keep.due(10.0) is Due.NOTHING
    assert keep.deadline() == 18.0


def test_an_unanswered_ping_declares_the_connection_dead() -> None:
    keep = KeepAlive(10, now=0.0)
    assert keep.due(10.0) is Due.PING
    assert keep.due(19.0) is Due.NOTHING
    assert keep.due(20.0) is Due.DEAD


def test_any_packet_from_the_broker_answers_the_ping() -> None:
    keep = KeepAlive(10, now=0.0)
    assert keep.due(10.0) is Due.PING
    keep.received()
    assert keep.due(20.0) is Due.PING  # quiet again for an interval: ping again, not dead


def test_keepalive_zero_never_pings() -> None:
    keep = KeepAlive(0, now=0.0)
    assert keep.deadline() is None
    assert keep.due(1e9) is Due.NOTHING


class FakeFeed:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self.acked: list[int] = []

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    def ack(self, packet_ids: Sequence[int]) -> None:
        self.acked.extend(packet_ids)


def beats(n: int, start: int = 1) -> list[tuple[str, bytes, bool, int]]:
    return [(f"p/d{i}/heartbeat", b"", False, i) for i in range(start, start + n)]


async def test_a_full_inbox_pauses_reading_and_resumes_at_half() -> None:
    pauses: list[int] = []
    inbox = Inbox(10, lambda: pauses.append(1))
    feed = FakeFeed()
    inbox.offer(feed, beats(6))
    assert not feed.paused
    inbox.offer(feed, beats(6, start=7))
    assert feed.paused
    assert len(inbox) == 12  # nothing is dropped: the read that filled it is kept
    inbox.offer(feed, beats(1, start=13))  # bytes already read still arrive
    assert (feed.pauses, len(pauses)) == (1, 1)
    inbox.take(4)
    assert feed.paused  # 9 left, over half
    inbox.take(4)
    assert not feed.paused  # 5 left
    assert len(inbox) == 5


async def test_take_splits_a_chunk_and_keeps_order_and_origin() -> None:
    inbox = Inbox(100, lambda: None)
    first, second = FakeFeed(), FakeFeed()
    inbox.offer(first, beats(3))
    inbox.offer(second, beats(3, start=4))
    taken = inbox.take(4)
    assert [(feed, [p[3] for p in ps]) for feed, ps in taken] == [
        (first, [1, 2, 3]),
        (second, [4]),
    ]
    rest = inbox.take(10)
    assert [(feed, [p[3] for p in ps]) for feed, ps in rest] == [(second, [5, 6])]
    assert len(inbox) == 0


async def test_a_forgotten_feed_is_not_resumed() -> None:
    inbox = Inbox(2, lambda: None)
    gone = FakeFeed()
    inbox.offer(gone, beats(3))
    inbox.forget(gone)
    inbox.take(3)
    assert gone.paused  # its connection is closed; resuming it would be meaningless
