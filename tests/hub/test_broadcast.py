"""Fan-out to subscribers: a batch of transitions is queued as if pushed one by one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lastseen.hub.broadcast import (
    RESET,
    SEEN,
    TRANSITION,
    Broadcaster,
    Message,
    StreamFilter,
    Subscriber,
    WireEvent,
)
from lastseen.metrics import Histogram
from lastseen.presence import Status


def _state(subscriber: Subscriber) -> tuple[list[Message], bool, bool]:
    return list(subscriber.queue), subscriber.closed, subscriber.overflowed


@given(
    limit=st.integers(1, 8),
    queued=st.integers(0, 8),
    skip_through=st.integers(0, 12),
    count=st.integers(0, 12),
    closed=st.booleans(),
)
def test_push_transitions_is_push_one_by_one(
    limit: int, queued: int, skip_through: int, count: int, closed: bool
) -> None:
    queued = min(queued, limit)
    one, batch = Subscriber(StreamFilter(), limit), Subscriber(StreamFilter(), limit)
    for subscriber in (one, batch):
        subscriber.queue.extend((SEEN, 0, b"{}") for _ in range(queued))
        subscriber.skip_through = skip_through
        subscriber.closed = closed
    messages: list[Message] = [(TRANSITION, seq, b"%d" % seq) for seq in range(1, count + 1)]
    results = [one.push(*m) for m in messages]  # every one, as publish did
    expected = all(results)
    assert batch.push_transitions(messages) is expected
    assert _state(batch) == _state(one)


def _event(seq: int, device_id: str, to: Status = Status.STALE) -> WireEvent:
    return WireEvent(seq, device_id, Status.ONLINE, to, {}, b"%d" % seq)


def test_publish_gives_each_subscriber_what_its_filter_takes_and_drops_the_slow() -> None:
    dropped: list[int] = []
    broadcaster = Broadcaster(replay_size=10, queue_size=3, on_overflow=lambda: dropped.append(1))
    everything = broadcaster.subscribe(StreamFilter())
    offline = broadcaster.subscribe(StreamFilter(statuses=frozenset({Status.OFFLINE})))
    one_device = broadcaster.subscribe(StreamFilter(devices=frozenset({"b"})))
    broadcaster.publish([_event(1, "a"), _event(2, "b", Status.OFFLINE), _event(3, "c")])
    assert [m[1] for m in everything.queue] == [1, 2, 3]
    assert [m[1] for m in offline.queue] == [2]
    assert [m[1] for m in one_device.queue] == [2]
    broadcaster.publish([_event(4, "b")])  # the fourth message overflows "everything"
    assert [m[0] for m in everything.queue] == [RESET]
    assert everything.closed
    assert dropped == [1]
    assert everything not in broadcaster.subscribers
    assert [m[1] for m in one_device.queue] == [2, 4]
    assert [e.seq for e in broadcaster.replay] == [1, 2, 3, 4]


def test_a_histogram_observation_may_count_several_times() -> None:
    histogram = Histogram("lag", "lag", [0.1, 1.0])
    histogram.observe(0.5, 3)
    histogram.observe(2.0)
    assert (histogram.counts, histogram.count, histogram.sum) == ([0, 3, 1], 4, 3.5)
