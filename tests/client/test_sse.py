"""The incremental SSE parser against the HTML standard's event stream rules."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lastseen.client.sse import ServerSentEvent, SSEError, SSEParser


def parse(stream: bytes | str, **options: object) -> list[ServerSentEvent]:
    parser = SSEParser(**options)  # type: ignore[arg-type]
    data = stream.encode() if isinstance(stream, str) else stream
    return parser.feed(data)


def test_a_transition_frame() -> None:
    events = parse('event: transition\nid: 42\ndata: {"seq": 42}\n\n')
    assert events == [ServerSentEvent("transition", '{"seq": 42}', "42")]


def test_event_type_defaults_to_message_and_resets_after_dispatch() -> None:
    events = parse("event: seen\ndata: a\n\ndata: b\n\n")
    assert [e.event for e in events] == ["seen", "message"]


def test_multi_line_data_is_joined_with_lf() -> None:
    assert parse("data: one\ndata: two\ndata\ndata: three\n\n")[0].data == "one\ntwo\n\nthree"


def test_only_one_space_after_the_colon_is_dropped() -> None:
    assert parse("data:  two spaces\ndata:none\n\n")[0].data == " two spaces\nnone"


def test_a_field_without_colon_has_an_empty_value() -> None:
    assert parse("data\n\n") == [ServerSentEvent("message", "", None)]
    assert parse("data\ndata\n\n")[0].data == "\n"
    # ``event`` without a value resets the name to the default.
    assert parse("event\ndata: x\n\n")[0].event == "message"


def test_comments_and_unknown_fields_are_ignored() -> None:
    events = parse(": keep-alive\n\n:another\nfoo: bar\ndata: x\n: in the middle\n\n")
    assert events == [ServerSentEvent("message", "x", None)]


def test_a_block_without_data_dispatches_nothing() -> None:
    assert parse("event: transition\n\n") == []
    # ... and does not leak its event name into the next event.
    assert parse("event: transition\n\ndata: x\n\n")[0].event == "message"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_line_ending(newline: str) -> None:
    text = newline.join(["event: seen", "id: 7", "data: a", "data: b", "", ""])
    assert parse(text) == [ServerSentEvent("seen", "a\nb", "7")]


def test_mixed_line_endings() -> None:
    events = parse("data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r")
    assert [e.data for e in events] == ["a\nb\nc", "d"]


def test_only_cr_and_lf_end_lines() -> None:
    # str.splitlines() would split on these; the SSE grammar does not.
    value = "a\x0bb\x0cc\x1cd\x85e\u2028f\u2029g"
    assert parse(f"data: {value}\n\n")[0].data == value


def test_id_persists_until_changed() -> None:
    events = parse("id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", "2"]


def test_an_empty_id_clears_it() -> None:
    events = parse("id: 1\ndata: a\n\nid\ndata: b\n\n")
    assert [e.id for e in events] == ["1", None]


def test_an_id_with_nul_is_ignored() -> None:
    events = parse("id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]


def test_last_event_id_moves_on_dispatch_even_without_data() -> None:
    parser = SSEParser()
    parser.feed(b"id: 5\n")
    assert parser.last_event_id == ""  # the block was not complete yet
    assert parser.feed(b"\n") == []
    assert parser.last_event_id == "5"


def test_a_cut_off_block_is_discarded() -> None:
    parser = SSEParser(last_event_id="3")
    assert parser.feed(b"id: 4\ndata: half an event") == []
    assert parser.last_event_id == "3"


def test_seeded_last_event_id_is_carried_by_events() -> None:
    assert parse("data: x\n\n", last_event_id="41")[0].id == "41"


def test_retry_takes_only_ascii_digits() -> None:
    parser = SSEParser()
    parser.feed(b"retry: 2500\n\n")
    assert parser.retry == 2500
    for bad in (b"retry: 1.5\n", b"retry: -1\n", b"retry: \xc2\xb2\n", b"retry:\n", b"retry: x\n"):
        parser.feed(bad)
        assert parser.retry == 2500


def test_a_leading_bom_is_ignored_once() -> None:
    bom = "\ufeff".encode()
    assert parse(bom + b"data: x\n\n")[0].data == "x"
    # A BOM later on is part of the field name, which then is unknown.
    assert parse(bom + bom + b"data: x\n\n") == []


def test_a_bom_split_across_chunks() -> None:
    parser = SSEParser()
    bom = "\ufeff".encode()
    assert parser.feed(bom[:1]) == []
    assert parser.feed(bom[1:] + b"data: x\n\n")[0].data == "x"


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert parse(b"data: \xff\xfe ok\n\n")[0].data == "\ufffd\ufffd ok"


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []  # the LF completes the CRLF; no blank line yet
    assert parser.feed(b"\r") == [ServerSentEvent("message", "a", None)]
    assert parser.feed(b"\ndata: b\n\n") == [ServerSentEvent("message", "b", None)]


def test_multibyte_character_split_between_chunks() -> None:
    parser = SSEParser()
    encoded = "data: é→😀\n\n".encode()
    events = [e for i in range(len(encoded)) for e in parser.feed(encoded[i : i + 1])]
    assert events == [ServerSentEvent("message", "é→😀", None)]


def test_feed_line_takes_lines_without_terminators() -> None:
    parser = SSEParser()
    assert parser.feed_line("event: reset") is None
    assert parser.feed_line('data: {"seq": 9}') is None
    assert parser.feed_line("") == ServerSentEvent("reset", '{"seq": 9}', None)


def test_an_endless_line_is_refused() -> None:
    parser = SSEParser(max_size=10)
    parser.feed(b"data: 1234")
    with pytest.raises(SSEError):
        parser.feed(b"5")


def test_an_endless_event_is_refused() -> None:
    parser = SSEParser(max_size=10)
    with pytest.raises(SSEError):
        parser.feed(b"data: 12345\ndata: 12345\n")


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_size"):
        SSEParser(max_size=0)


# -- properties -------------------------------------------------------------------


def reference(text: str) -> list[ServerSentEvent]:
    """A deliberately naive model of the spec: the whole stream at once."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece is not a complete line
    events = []
    data: list[str] = []
    event = ""
    id_buffer = last_id = ""
    for line in lines:
        if line == "":
            last_id = id_buffer
            if data:
                events.append(ServerSentEvent(event or "message", "\n".join(data), last_id or None))
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        value = value[1:] if colon and value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            id_buffer = value
    return events


_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12
)
_line = st.one_of(
    st.builds(lambda v: f"data: {v}", _value),
    st.builds(lambda v: f"data:{v}", _value),
    st.just("data"),
    st.builds(lambda v: f"event: {v}", _value),
    st.builds(lambda v: f"id: {v}", _value),
    st.just("id"),
    st.builds(lambda v: f":{v}", _value),
    st.builds(lambda v: f"retry: {v}", st.integers(0, 10**6).map(str)),
    st.builds(lambda v: f"x-unknown: {v}", _value),
    st.just(""),
    st.just(""),
)
_stream = st.tuples(
    st.booleans(),
    st.lists(st.tuples(_line, st.sampled_from(["\n", "\r\n", "\r"])), max_size=40),
).map(lambda t: ("\ufeff" if t[0] else "") + "".join(line + end for line, end in t[1]))


@settings(max_examples=300)
@given(_stream)
def test_whole_stream_matches_the_reference(text: str) -> None:
    assert SSEParser().feed(text.encode()) == reference(text)


@settings(max_examples=300)
@given(_stream, st.data())
def test_chunk_boundaries_do_not_matter(text: str, data: st.DataObject) -> None:
    encoded = text.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(encoded)), max_size=20)))
    chunks = [encoded[a:b] for a, b in zip([0, *cuts], [*cuts, len(encoded)], strict=True)]
    whole = SSEParser()
    pieces = SSEParser()
    expected = whole.feed(encoded)
    assert [e for chunk in chunks for e in pieces.feed(chunk)] == expected
    assert pieces.last_event_id == whole.last_event_id
    assert pieces.retry == whole.retry


@given(_stream, st.data())
def test_text_chunks_match_byte_chunks(text: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=20)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    parser = SSEParser()
    assert [e for chunk in chunks for e in parser.feed_text(chunk)] == reference(text)
