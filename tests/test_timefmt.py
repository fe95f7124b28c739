"""Wire times: RFC 3339 UTC with milliseconds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lastseen.timefmt import parse_rfc3339, rfc3339, rfc3339_or_none


def test_format_has_milliseconds_and_z() -> None:
    assert rfc3339(1_795_419_503.123) == "2026-11-23T07:38:23.123Z"
    assert rfc3339(1_795_419_503.9996) == "2026-11-23T07:38:24.000Z"
    assert rfc3339_or_none(None) is None


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_round_trip_within_a_millisecond(ts: float) -> None:
    assert parse_rfc3339(rfc3339(ts)) == pytest.approx(ts, abs=0.0005 + 1e-6)


def test_parse_accepts_offsets_and_refuses_naive_times() -> None:
    assert parse_rfc3339("2026-11-23T08:38:23.123+01:00") == pytest.approx(1_795_419_503.123)
    with pytest.raises(ValueError, match="time zone"):
        parse_rfc3339("2026-11-23T07:38:23")
