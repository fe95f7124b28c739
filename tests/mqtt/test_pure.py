"""The bridge's other pure parts: waves, retained messages, backoff, broker URLs."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lastseen.mqtt import outbound
from lastseen.mqtt.address import BrokerAddress, parse_broker_url
from lastseen.mqtt.backoff import Backoff
from lastseen.mqtt.parser import Inbound, Kind
from lastseen.mqtt.plan import waves
from lastseen.presence import Status


def beat(d: str) -> Inbound:
    return Inbound(d, Kind.HEARTBEAT)


def will(d: str) -> Inbound:
    return Inbound(d, Kind.STATUS, online=False)


def test_waves_keep_order_per_device() -> None:
    plan = list(waves([beat("a"), beat("b"), beat("a"), will("a"), beat("a"), will("c")]))
    assert [(w.beats, w.others) for w in plan] == [
        ([beat("a"), beat("b"), beat("a")], []),
        ([], [will("a")]),
        ([beat("a")], [will("c")]),
    ]


def test_waves_without_batched_beats() -> None:
    plan = list(waves([beat("a"), beat("a")], batch_beats=False))
    assert [len(w.others) for w in plan] == [1, 1]


kinds = st.sampled_from([Kind.HEARTBEAT, Kind.TELEMETRY, Kind.STATUS])


@given(st.lists(st.tuples(st.sampled_from("abc"), kinds), max_size=30))
def test_waves_lose_nothing_and_never_mix_a_device(items: list[tuple[str, Kind]]) -> None:
    messages = [Inbound(d, k) for d, k in items]
    plan = list(waves(messages))
    flat = [m for w in plan for m in (*w.beats, *w.others)]
    assert sorted(flat, key=repr) == sorted(messages, key=repr)
    for w in plan:
        others = [m.device_id for m in w.others]
        assert len(others) == len(set(others))
        assert not set(others) & {m.device_id for m in w.beats}
    # Per device, the order across waves is the arrival order.
    for device in "abc":
        mine = [m for w in plan for m in (*w.beats, *w.others) if m.device_id == device]
        assert [m.kind for m in mine] == [k for d, k in items if d == device]


def test_availability_maps_stale_by_config() -> None:
    assert outbound.availability(Status.ONLINE) == b"online"
    assert outbound.availability(Status.STALE) == b"online"
    assert outbound.availability(Status.STALE, stale_online=False) == b"offline"
    assert outbound.availability(Status.OFFLINE) == b"offline"
    assert outbound.availability(Status.UNKNOWN) == b"offline"


def test_transition_messages_and_discovery() -> None:
    topics = outbound.Topics("p/", discovery=True)
    event = {
        "device_id": "pi.1", "from": "unknown", "to": "online", "at": "T",
        "reason": "heartbeat", "source": "heartbeat", "seq": 1,
    }  # fmt: skip
    out = outbound.from_transition(topics, event)
    assert [m.topic for m in out] == [
        "p/pi.1/presence",
        "p/pi.1/availability",
        f"homeassistant/binary_sensor/{outbound.object_id('pi.1')}/connectivity/config",
    ]
    assert orjson.loads(out[0].payload) == {
        "status": "online", "since": "T", "reason": "heartbeat", "source": "heartbeat"
    }  # fmt: skip
    config = orjson.loads(out[2].payload)
    assert config["device_class"] == "connectivity"
    assert config["state_topic"] == "p/pi.1/availability"
    assert all(m.payload == b"" for m in outbound.cleared(topics, "pi.1"))
    assert len(outbound.cleared(topics, "pi.1")) == 3


def test_object_ids_do_not_collide() -> None:
    assert outbound.object_id("a_b") == "lastseen_a_b"
    assert outbound.object_id("a.b") != outbound.object_id("a_b")


def test_backoff_is_capped_and_jittered() -> None:
    b = Backoff(initial=0.5, cap=30.0, jitter=0.5)
    assert b.delay(0, 0.0) == 0.5
    assert b.delay(3, 0.0) == 4.0
    assert b.delay(100, 0.0) == 30.0
    assert b.delay(100, 0.999) == pytest.approx(15.0, abs=0.05)


def test_broker_urls() -> None:
    assert parse_broker_url("mqtt://127.0.0.1") == BrokerAddress("127.0.0.1", 1883)
    url = parse_broker_url("mqtts://u%40x:p%3A@broker:9999")
    assert (url.host, url.port, url.tls, url.username, url.password) == (
        "broker", 9999, True, "u@x", "p:"
    )  # fmt: skip
    assert "p:" not in repr(url)
    assert "p:" not in url.redacted()
    for bad in ("http://x", "mqtt://", "mqtt://x:0", "mqtt://x/path", "mqtt://x:99999"):
        with pytest.raises(ValueError, match=r"\w"):
            parse_broker_url(bad)


def test_orphans_are_retained_presence_topics_of_unknown_devices() -> None:
    topics = outbound.Topics(prefix="ls/")
    retained = [
        "ls/gone/presence",
        "ls/kept/presence",
        "ls/a/b/presence",  # not a device topic of this prefix
        "other/gone2/presence",
        "ls/gone3/availability",
        "ls//presence",
    ]
    assert outbound.orphans(topics, retained, {"kept"}) == ["gone"]
