"""The sans-IO MQTT codec: table tests, round trips and arbitrary bytes (Hypothesis)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lastseen.mqtt import codec, wire
from lastseen.mqtt.codec import ConnAck, Decoder, Disconnect, MalformedPacket, PingResp, SubAck


def feed_all(chunks: list[bytes], *, version: int = codec.V5, maximum: int = codec.MAX_REMAINING):
    """Feed ``chunks`` in order: (publishes, controls, the error if one was raised)."""
    decoder = Decoder(version=version, maximum_packet=maximum)
    publishes: list[codec.Publish] = []
    controls: list[codec.Control] = []
    try:
        for chunk in chunks:
            controls.extend(decoder.feed(chunk, publishes))
    except MalformedPacket:
        return publishes, controls, True
    return publishes, controls, False


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def connack(reason: int = 0, *, keep_alive: int | None = None, present: bool = False) -> bytes:
    props = b"\x21\x00\x0a"  # receive maximum 10: skipped
    if keep_alive is not None:
        props += struct.pack("!BH", 0x13, keep_alive)
    props += b"\x1f\x00\x02hi"  # reason string: skipped
    body = bytes([1 if present else 0, reason]) + codec.varint(len(props)) + props
    return b"\x20" + codec.varint(len(body)) + body


def suback(packet_id: int, codes: bytes) -> bytes:
    body = struct.pack("!H", packet_id) + b"\x00" + codes
    return b"\x90" + codec.varint(len(body)) + body


# ---------------------------------------------------------------------- tables


def test_control_packets_decode() -> None:
    stream = connack(keep_alive=20, present=True) + suback(1, b"\x01\x00\x80") + b"\xd0\x00"
    stream += b"\xe0\x01\x8e"  # DISCONNECT, session taken over
    publishes, controls, failed = feed_all([stream])
    assert (publishes, failed) == ([], False)
    assert controls == [
        ConnAck(0, True, 20),
        SubAck(1, (1, 0, 0x80)),
        PingResp(),
        Disconnect(0x8E),
    ]


def test_a_refused_connect_carries_its_reason() -> None:
    assert feed_all([connack(0x87)])[1] == [ConnAck(0x87, False, None)]


def test_publish_at_both_qos_and_retained() -> None:
    stream = codec.publish("a/b", b"x", qos=0) + codec.publish(
        "c/d", b"{}", qos=1, packet_id=513, retain=True
    )
    assert feed_all([stream])[0] == [("a/b", b"x", False, 0), ("c/d", b"{}", True, 513)]


def test_publish_properties_are_skipped() -> None:
    props = b"\x01\x01" + b"\x03\x00\x04json"  # payload format, content type
    body = b"\x00\x03a/b" + codec.varint(len(props)) + props + b"payload"
    assert feed_all([b"\x30" + codec.varint(len(body)) + body])[0] == [
        ("a/b", b"payload", False, 0)
    ]


@pytest.mark.parametrize(
    "stream",
    [
        b"\x10\x00",  # CONNECT is never sent to a client
        b"\x36\x05\x00\x01a\x00\x01",  # QoS 3
        b"\x30\x03\x00\x05a",  # topic longer than the packet
        b"\x30\x04\x00\x02\xff\xfe",  # topic not UTF-8
        b"\x32\x03\x00\x01a",  # QoS 1 without a packet id
        b"\x30\xff\xff\xff\xff\x01",  # remaining length over four bytes
        b"\x20\x01\x00",  # CONNACK too short
        b"\x90\x02\x00\x01",  # SUBACK without codes
    ],
)
def test_broken_streams_raise_malformed(stream: bytes) -> None:
    assert feed_all([stream])[2] is True


def test_a_packet_over_the_maximum_is_refused_before_it_is_buffered() -> None:
    header = b"\x30" + codec.varint(1_000_000)
    decoder = Decoder(maximum_packet=65_536)
    with pytest.raises(MalformedPacket):
        decoder.feed(header, [])
    assert decoder.buffered() == 0


def test_an_incomplete_packet_waits_for_the_rest() -> None:
    packet = codec.publish("t", b"abc")
    decoder = Decoder()
    out: list[codec.Publish] = []
    assert decoder.feed(packet[:3], out) == []
    assert (out, decoder.buffered()) == ([], 3)
    decoder.feed(packet[3:], out)
    assert (out, decoder.buffered()) == ([("t", b"abc", False, 0)], 0)


def test_ignored_packets_yield_nothing() -> None:
    assert feed_all([b"\x40\x02\x00\x01" + b"\xb0\x03\x00\x01\x00"]) == ([], [], False)


def test_connect_311_is_the_bytes_the_test_device_sends() -> None:
    assert codec.connect("dev", version=codec.V311, keepalive=30) == wire.connect_packet(
        "dev", keepalive=30
    )


def test_connect_5_carries_credentials_and_limits() -> None:
    packet = codec.connect(
        "hub", username="u", password="p", receive_maximum=100, maximum_packet=70_000
    )
    assert packet[0] == 0x10
    body = packet[2:]  # a short packet: one length byte
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0x80 | 0x40 | 0x02  # username, password, clean start
    assert b"\x21\x00\x64" in body  # receive maximum 100
    assert struct.pack("!BI", 0x27, 70_000) in body
    assert body.endswith(b"\x00\x03hub\x00\x01u\x00\x01p")


def test_subscribe_and_acks() -> None:
    assert codec.subscribe(7, [("a/+", 1)]) == b"\x82\x09\x00\x07\x00\x00\x03a/+\x01"
    assert codec.subscribe(7, [("a", 0)], version=codec.V311) == b"\x82\x06\x00\x07\x00\x01a\x00"
    assert codec.pubacks([1, 300]) == codec.puback(1) + codec.puback(300)
    assert codec.puback(300) == b"\x40\x02\x01\x2c"


def test_varint_boundaries() -> None:
    assert [codec.varint(n) for n in (0, 127, 128, 16_383, 16_384)] == [
        b"\x00",
        b"\x7f",
        b"\x80\x01",
        b"\xff\x7f",
        b"\x80\x80\x01",
    ]
    with pytest.raises(ValueError, match="variable byte integer"):
        codec.varint(codec.MAX_REMAINING + 1)


# ---------------------------------------------------------------------- properties

topics = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
messages = st.lists(
    st.tuples(
        topics,
        st.binary(max_size=300),
        st.booleans(),
        st.sampled_from([0, 1]),
        st.integers(1, 65_535),
    ),
    max_size=20,
)


@given(messages, st.sampled_from([codec.V5, codec.V311]), st.lists(st.integers(0, 10**6)))
def test_publishes_round_trip_split_anywhere(
    batch: list[tuple[str, bytes, bool, int, int]], version: int, cuts: list[int]
) -> None:
    stream = b"".join(
        codec.publish(t, p, qos=q, packet_id=i, retain=r, version=version)
        for t, p, r, q, i in batch
    )
    expected = [(t, p, r, i if q else 0) for t, p, r, q, i in batch]
    assert feed_all(split(stream, cuts), version=version) == (expected, [], False)


@given(st.binary(max_size=400), st.lists(st.integers(0, 10**6), max_size=8), st.booleans())
def test_arbitrary_bytes_never_crash_and_splits_do_not_matter(
    data: bytes, cuts: list[int], v5: bool
) -> None:
    version = codec.V5 if v5 else codec.V311
    whole = feed_all([data], version=version, maximum=256)
    assert feed_all(split(data, cuts), version=version, maximum=256) == whole


@given(st.lists(st.sampled_from([connack(), suback(3, b"\x01"), b"\xd0\x00"]), max_size=6))
def test_control_packets_between_publishes_split_anywhere(controls: list[bytes]) -> None:
    stream = b"".join(c + codec.publish("t", b"p") for c in controls)
    publishes, decoded, failed = feed_all(split(stream, list(range(0, len(stream), 3))))
    assert not failed
    assert len(decoded) == len(controls)
    assert publishes == [("t", b"p", False, 0)] * len(controls)
