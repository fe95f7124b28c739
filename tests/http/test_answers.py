"""The ingest answers written from templates are byte-identical to orjson's output of
the dict shapes they replace, caches included."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lastseen.http import answers
from lastseen.http.answers import (
    batch_answer,
    beat_answer,
    beat_json,
    item_json,
    online_batch,
    refusal_json,
)
from lastseen.hub.core import BeatResult
from lastseen.presence import DeviceState, Profile, Status

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-"
device_ids = st.text(ALPHABET, min_size=1, max_size=128)
# Epoch seconds from 1970 to 2100, with sub-millisecond parts that round either way.
times = st.floats(min_value=0.0, max_value=4_102_444_800.0, allow_nan=False)
profiles = st.builds(
    lambda stale, extra: Profile(name="p", stale_after=stale, offline_after=stale + extra),
    st.floats(min_value=0.001, max_value=1e9, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False),
)


def _result(
    device_id: str, status: Status, since: float, last_seen: float | None, profile: Profile
) -> BeatResult:
    state = DeviceState(status=status, since=since, last_seen=last_seen, last_own=last_seen)
    return BeatResult(device_id, state, profile)


@given(device_ids, st.sampled_from(Status), times, st.none() | times, profiles)
def test_a_beat_answer_is_orjson_of_beat_json(
    device_id: str, status: Status, since: float, last_seen: float | None, profile: Profile
) -> None:
    result = _result(device_id, status, since, last_seen, profile)
    expected = orjson.dumps(beat_json(result))
    assert beat_answer(result) == expected
    assert beat_answer(result) == expected  # from the caches this time


def test_last_seen_is_cached_per_millisecond_not_per_float() -> None:
    profile = Profile()
    base = 1_800_000_000.0
    # Three times in one millisecond, then the next millisecond and a time rounding up.
    for seen in (base + 0.0001, base + 0.0003, base + 0.0004, base + 0.0012, base + 0.0016):
        result = _result("a", Status.ONLINE, base, seen, profile)
        assert beat_answer(result) == orjson.dumps(beat_json(result))


def test_profiles_sharing_an_id_never_share_a_hint() -> None:
    # A profile freed and another allocated at the same address must not get its hint.
    for stale in (1.0, 2.5, 40.0, 0.001, 7.0):
        profile = Profile(stale_after=stale)
        result = _result("a", Status.ONLINE, 1.0, 2.0, profile)
        assert orjson.loads(beat_answer(result))["next_heartbeat_in"] == profile.heartbeat_hint
        del profile, result


def test_the_caches_start_again_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers, "_CACHE_LIMIT", 4)
    monkeypatch.setattr(answers, "_since", {})
    monkeypatch.setattr(answers, "_hints", {})
    kept = [Profile(stale_after=float(n)) for n in range(1, 11)]
    for n, profile in enumerate(kept):
        result = _result("a", Status.STALE, 1_800_000_000.0 + n, None, profile)
        assert beat_answer(result) == orjson.dumps(beat_json(result))
        assert len(answers._since) <= 4
        assert len(answers._hints) <= 4


@given(
    st.lists(
        st.one_of(
            st.tuples(device_ids, st.sampled_from(Status)),
            st.tuples(st.none() | st.text(), st.text(), st.text()),
        ),
        max_size=20,
    )
)
def test_a_batch_answer_is_orjson_of_its_dict(items: list[tuple[object, ...]]) -> None:
    written: list[str] = []
    shaped: list[dict[str, object]] = []
    rejected = 0
    for item in items:
        if len(item) == 2:
            device_id, status = item
            assert isinstance(device_id, str)
            assert isinstance(status, Status)
            written.append(item_json(device_id, status))
            shaped.append({"device_id": device_id, "status": status.value})
        else:
            given_id, code, message = item
            assert given_id is None or isinstance(given_id, str)
            assert isinstance(code, str)
            assert isinstance(message, str)
            rejected += 1
            written.append(refusal_json(given_id, code, message))
            shaped.append({"device_id": given_id, "error": {"code": code, "message": message}})
    expected = {"accepted": len(items) - rejected, "rejected": rejected, "results": shaped}
    assert batch_answer(len(items) - rejected, rejected, written) == orjson.dumps(expected)


@given(st.lists(device_ids, max_size=50))
def test_an_all_online_batch_answer_is_orjson_of_its_dict(ids: list[str]) -> None:
    results = [{"device_id": device_id, "status": "online"} for device_id in ids]
    expected = {"accepted": len(ids), "rejected": 0, "results": results}
    assert online_batch(ids) == orjson.dumps(expected)
