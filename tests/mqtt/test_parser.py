"""The pure inbound parser: table tests and properties (it never raises)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lastseen.hub.core import DEVICE_ID as HUB_DEVICE_ID
from lastseen.mqtt.parser import DEVICE_ID, CachedDecoder, Inbound, Kind, Reason, Rejected, decode
from lastseen.presence import Observation, Source

P = "ls/"


def parse(topic: str, payload: bytes = b"", retained: bool = False) -> Inbound | Rejected:
    return decode(P, topic, payload, max_payload=1024, retained=retained)


def test_device_id_rule_is_the_hubs() -> None:
    assert DEVICE_ID.pattern == HUB_DEVICE_ID.pattern


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("ls/pi/heartbeat", b"", Inbound("pi", Kind.HEARTBEAT)),
        (
            "ls/pi/heartbeat",
            b'{"attributes": {"fw": "1"}, "metrics": {"t": 2.5}}',
            Inbound("pi", Kind.HEARTBEAT, attributes={"fw": "1"}, metrics={"t": 2.5}),
        ),
        ("ls/pi/telemetry", b"\x00\xffbinary", Inbound("pi", Kind.TELEMETRY)),
        (
            "ls/pi/telemetry",
            b'{"temp": 21}',
            Inbound("pi", Kind.TELEMETRY, attributes={"temp": 21}),
        ),
        ("ls/pi/telemetry", b"{broken", Inbound("pi", Kind.TELEMETRY)),
        ("ls/pi/status", b"online", Inbound("pi", Kind.STATUS, online=True)),
        ("ls/pi/status", b" OFFLINE\n", Inbound("pi", Kind.STATUS, online=False)),
        (
            "ls/pi/status",
            b'{"state": "offline", "session": 7}',
            Inbound("pi", Kind.STATUS, online=False, session=7),
        ),
    ],
)
def test_accepted(topic: str, payload: bytes, expected: Inbound) -> None:
    assert parse(topic, payload) == expected


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("other/pi/heartbeat", b"", Reason.UNKNOWN_TOPIC),
        ("ls/pi/presence", b"", Reason.UNKNOWN_TOPIC),
        ("ls/pi", b"", Reason.UNKNOWN_TOPIC),
        ("ls/a/b/heartbeat", b"", Reason.UNKNOWN_TOPIC),
        ("ls/bad id/heartbeat", b"", Reason.INVALID_DEVICE_ID),
        ("ls//heartbeat", b"", Reason.INVALID_DEVICE_ID),
        ("ls/pi/heartbeat", b"x" * 1025, Reason.OVERSIZE),
        ("ls/pi/telemetry", b"x" * 1025, Reason.OVERSIZE),
        ("ls/pi/heartbeat", b"\xff\xfe", Reason.NOT_UTF8),
        ("ls/pi/status", b"\xff", Reason.NOT_UTF8),
        ("ls/pi/heartbeat", b"{nope", Reason.INVALID_JSON),
        ("ls/pi/heartbeat", b" ", Reason.INVALID_JSON),
        ("ls/pi/heartbeat", b"[1]", Reason.INVALID_PAYLOAD),
        ("ls/pi/heartbeat", b'{"attributs": {}}', Reason.INVALID_PAYLOAD),
        ("ls/pi/heartbeat", b'{"metrics": {"a": "x"}}', Reason.INVALID_PAYLOAD),
        ("ls/pi/status", b"maybe", Reason.INVALID_STATUS),
        ("ls/pi/status", b"{nope", Reason.INVALID_JSON),
        ("ls/pi/status", b'{"state": "gone"}', Reason.INVALID_STATUS),
        ("ls/pi/status", b'{"state": "offline", "session": -1}', Reason.INVALID_STATUS),
        ("ls/pi/status", b'{"state": "offline", "session": true}', Reason.INVALID_STATUS),
        ("ls/pi/status", b'{"state": "offline", "extra": 1}', Reason.INVALID_STATUS),
    ],
)
def test_rejected(topic: str, payload: bytes, reason: Reason) -> None:
    result = parse(topic, payload)
    assert isinstance(result, Rejected)
    assert result.reason is reason


def test_retained_heartbeat_is_not_a_sign_of_life_but_a_retained_will_applies() -> None:
    assert parse("ls/pi/heartbeat", retained=True) == Rejected(
        Reason.RETAINED, "a retained message is not a sign of life", "pi"
    )
    assert parse("ls/pi/status", b"offline", retained=True) == Inbound(
        "pi", Kind.STATUS, online=False
    )


def test_observations() -> None:
    assert Inbound("a", Kind.HEARTBEAT).observation() == Observation(Source.HEARTBEAT)
    assert Inbound("a", Kind.TELEMETRY).observation() == Observation(Source.TELEMETRY)
    assert Inbound("a", Kind.STATUS, online=True, session=3).observation() == Observation(
        Source.CONNECT, 3
    )
    assert Inbound("a", Kind.STATUS, online=False).observation() == Observation(Source.DISCONNECT)


topics = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda d, k: f"ls/{d}/{k}",
        st.text(max_size=20),
        st.sampled_from(["heartbeat", "telemetry", "status", "x"]),
    ),
)
payloads = st.one_of(
    st.binary(max_size=1200),
    st.builds(lambda t: t.encode(), st.text(max_size=200)),
    st.sampled_from([b"online", b"offline", b'{"state":"online","session":1}', b"{}"]),
)


@given(topic=topics, payload=payloads, retained=st.booleans())
def test_never_raises_and_accepts_only_valid_ids(
    topic: str, payload: bytes, retained: bool
) -> None:
    result = parse(topic, payload, retained)
    if isinstance(result, Inbound):
        assert HUB_DEVICE_ID.fullmatch(result.device_id)
        assert topic == f"ls/{result.device_id}/{result.kind.value}"
        assert len(payload) <= 1024
        assert not retained or result.kind is Kind.STATUS
        result.observation()
    else:
        assert isinstance(result.reason, Reason)


@given(
    st.sampled_from(["ls/pi/heartbeat", "ls/pi/status", "ls/pi/telemetry", "ls/x", "other/a/b"]),
    st.sampled_from([b"", b"online", b'{"attributes": {"a": 1}}', b"\xff", b"{", b"x" * 2000]),
    st.booleans(),
)
def test_the_memoised_decoder_decodes_like_decode(
    topic: str, payload: bytes, retained: bool
) -> None:
    cached = CachedDecoder(P, max_payload=1024)
    for _ in range(2):  # a miss, then a hit
        assert cached(topic, payload, retained) == parse(topic, payload, retained)


def test_the_topic_memo_is_bounded() -> None:
    cached = CachedDecoder(P, max_payload=1024, limit=3)
    for i in range(10):
        assert cached(f"ls/d{i}/heartbeat", b"", False) == Inbound(f"d{i}", Kind.HEARTBEAT)
        assert len(cached._topics) <= 3
