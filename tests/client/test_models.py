"""Parsing the hub's JSON (docs/api.md) into the client's values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lastseen.client import (
    BatchResult,
    Device,
    DevicePage,
    EventsPage,
    Heartbeat,
    HeartbeatAck,
    HubError,
    StreamEvent,
    Transition,
)
from lastseen.client.hub import _segment


def device_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "sensor-1",
        "status": "online",
        "status_since": "2026-11-23T07:38:23.123Z",
        "last_seen": "2026-11-23T07:40:00.000Z",
        "reason": "heartbeat",
        "source": "heartbeat",
        "profile": "default",
        "labels": {"site": "lab"},
        "attributes": {"fw": "1.2"},
        "metrics": {"temp": 21.5},
        "flapping": False,
        "session": None,
        "created_at": "2026-11-23T07:00:00.000Z",
        "next_deadline": "2026-11-23T07:40:40.000Z",
    }
    data.update(overrides)
    return data


def event_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "seq": 42,
        "device_id": "sensor-1",
        "from": "online",
        "to": "stale",
        "at": "2026-11-23T07:41:00.000Z",
        "reason": "timeout:stale_after",
        "source": "timeout",
        "flapping": False,
    }
    data.update(overrides)
    return data


def test_a_full_device() -> None:
    device = Device.from_json(device_json())
    assert device.id == "sensor-1"
    assert device.status == "online"
    assert device.status_since == datetime(2026, 11, 23, 7, 38, 23, 123000, tzinfo=UTC)
    assert device.labels == {"site": "lab"}
    assert device.metrics == {"temp": 21.5}
    assert device.raw["session"] is None


def test_a_never_seen_device_has_nulls() -> None:
    nulls = dict.fromkeys(["status_since", "last_seen", "reason", "source", "next_deadline"])
    device = Device.from_json(device_json(status="unknown", **nulls))
    assert (device.last_seen, device.reason, device.next_deadline) == (None, None, None)


def test_unknown_fields_are_kept_in_raw() -> None:
    device = Device.from_json(device_json(firmware_channel="beta"))
    assert device.raw["firmware_channel"] == "beta"


@pytest.mark.parametrize(
    "overrides",
    [
        {"id": None},
        {"status": 3},
        {"last_seen": "yesterday"},
        {"last_seen": "2026-11-23T07:40:00"},  # no zone: ambiguous
        {"labels": {"site": 1}},
        {"labels": ["site"]},
    ],
)
def test_a_malformed_device_is_a_bad_response(overrides: dict[str, Any]) -> None:
    with pytest.raises(HubError) as caught:
        Device.from_json(device_json(**overrides))
    assert caught.value.code == "bad_response"


def test_a_device_that_is_not_an_object() -> None:
    with pytest.raises(HubError, match="not a JSON object"):
        Device.from_json(["sensor-1"])


def test_a_transition() -> None:
    transition = Transition.from_json(event_json())
    assert (transition.seq, transition.from_status, transition.to_status) == (42, "online", "stale")
    assert transition.at.tzinfo is not None


@pytest.mark.parametrize("seq", ["42", 4.2, True, None])
def test_a_transition_needs_an_integer_seq(seq: object) -> None:
    with pytest.raises(HubError):
        Transition.from_json(event_json(seq=seq))


def test_stream_event_transition() -> None:
    event = StreamEvent("transition", "42", event_json())
    assert event.transition().seq == 42
    with pytest.raises(ValueError, match="seen"):
        StreamEvent("seen", "42", {"devices": {}}).transition()


def test_heartbeat_ack() -> None:
    ack = HeartbeatAck.from_json(
        {
            "device_id": "a",
            "status": "online",
            "status_since": "2026-11-23T07:38:23.123Z",
            "last_seen": "2026-11-23T07:38:23.123Z",
            "next_heartbeat_in": 20,
            "pending_commands": [],
            "should_reconnect": False,
        }
    )
    assert (ack.status, ack.next_heartbeat_in, ack.should_reconnect) == ("online", 20.0, False)


def test_heartbeat_ack_needs_only_device_id_and_status() -> None:
    ack = HeartbeatAck.from_json({"device_id": "a", "status": "online"})
    assert ack.pending_commands == ()


def test_batch_result_keeps_order_and_errors() -> None:
    result = BatchResult.from_json(
        {
            "accepted": 1,
            "rejected": 1,
            "results": [
                {"device_id": "a", "status": "online"},
                {"device_id": "b b", "error": {"code": "invalid_input", "message": "bad id"}},
            ],
        }
    )
    assert [r.ok for r in result.results] == [True, False]
    assert result.results[1].error_code == "invalid_input"


def test_device_page_and_cursor() -> None:
    page = DevicePage.from_json({"devices": [device_json()], "seq": 7, "next": "c1"})
    assert (len(page.devices), page.seq, page.next) == (1, 7, "c1")
    last = DevicePage.from_json({"devices": [], "seq": 7, "next": None})
    assert last.next is None


def test_events_page() -> None:
    page = EventsPage.from_json({"events": [event_json()], "first_seq": 1, "last_seq": 42})
    assert [e.seq for e in page.events] == [42]
    assert (page.first_seq, page.last_seq) == (1, 42)


def test_events_page_needs_a_list() -> None:
    with pytest.raises(HubError, match="'events' is not a list"):
        EventsPage.from_json({"events": {}})


def test_heartbeat_item_json() -> None:
    assert Heartbeat("a").to_json() == {"device_id": "a"}
    assert Heartbeat("a", {"fw": "1"}, {"t": 2}).to_json() == {
        "device_id": "a",
        "attributes": {"fw": "1"},
        "metrics": {"t": 2},
    }


@pytest.mark.parametrize(
    ("device_id", "segment"),
    [
        ("sensor-1", "sensor-1"),
        ("gw:7@site_a.b", "gw:7@site_a.b"),
        ("a/b", "a%2Fb"),
        ("a b", "a%20b"),
        ("?#", "%3F%23"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...x", "...x"),
    ],
)
def test_device_ids_become_one_path_segment(device_id: str, segment: str) -> None:
    assert _segment(device_id) == segment


def test_an_empty_device_id_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        _segment("")
