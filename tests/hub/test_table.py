"""The columnar table: device numbers, state round trips, bulk loads, the entries view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lastseen.hub.core import BeatResult
from lastseen.hub.table import EMPTY, REASONS, SOURCES, STATUSES, DeviceTable, Entries
from lastseen.presence import DeviceState, Profile, Reason, Source, Status, new_device
from tests.hub.strategies import states as device_states

T0 = 1_800_000_000.0
PROFILE = Profile()
times = st.floats(min_value=T0 - 1000, max_value=T0 + 1000, allow_nan=False)
states = device_states(times)


@given(states, states)
def test_a_state_comes_back_exactly_as_it_was_stored(
    first: DeviceState, second: DeviceState
) -> None:
    table = DeviceTable()
    n = table.add("d", first, PROFILE, T0, T0)
    assert table.state(n) == first
    table.set_state(n, second)
    assert table.state(n) == second


@given(st.lists(states, min_size=1, max_size=8))
def test_presence_columns_are_the_states_of_the_devices_asked_for(
    stored: list[DeviceState],
) -> None:
    table = DeviceTable()
    numbers = [table.add(f"d{i}", s, PROFILE, T0, T0) for i, s in enumerate(stored)]
    asked = numbers[::-1][: max(1, len(numbers) - 1)]  # not all, not in number order
    ids = [f"d{n}" for n in asked]
    updates = list(table.presence_columns(ids, asked).updates())
    assert [u.id for u in updates] == ids
    assert [u.state for u in updates] == [stored[n] for n in asked]
    assert all(u.version == 0 for u in updates)


def test_numbers_are_interned_and_recycled_on_delete() -> None:
    table = DeviceTable()
    a = table.add("a", new_device(T0), PROFILE, T0, T0)
    b = table.add("b", new_device(T0), PROFILE, T0, T0)
    assert (a, b) == (0, 1)
    assert table.index == {"a": 0, "b": 1}
    table.labels[a] = {"site": "x"}
    table.sessions[a] = 7
    table.scheduled[a] = T0 + 5
    assert table.remove("a") == a
    assert table.remove("a") is None
    assert "a" not in table.index
    assert table.ids[a] is None
    # The freed number is reused, and nothing of the old device leaks into the new one.
    c = table.add("c", new_device(T0 + 1), Profile(name="fast"), T0 + 1, T0 + 1)
    assert c == a
    assert len(table.ids) == 2
    assert table.state(c) == new_device(T0 + 1)
    assert c not in table.labels
    assert table.scheduled[c] != table.scheduled[c]  # NaN: nothing scheduled
    assert table.profile_of(c).name == "fast"
    assert table.profile_of(b) is PROFILE


def test_status_histogram_leaves_out_free_numbers() -> None:
    table = DeviceTable()
    online = DeviceState(status=Status.ONLINE, since=T0, last_seen=T0, anchor=T0)
    table.add("a", online, PROFILE, T0, T0)
    table.add("b", online, PROFILE, T0, T0)
    table.add("c", new_device(T0), PROFILE, T0, T0)
    table.remove("a")
    assert table.status_histogram() == [1, 1, 0, 0]


def _row(device_id: str, profile: str, state: DeviceState, **extra: Any) -> tuple[Any, ...]:
    """``state`` as a ``DeviceRow`` (JSON text, codes, None for empty)."""
    flaps = state.flaps
    return (
        device_id,
        profile,
        extra.get("labels"),
        extra.get("attributes"),
        extra.get("metrics"),
        STATUSES.index(state.status),
        state.since,
        state.last_seen,
        state.last_own,
        state.anchor,
        -1 if state.reason is None else REASONS.index(state.reason),
        -1 if state.source is None else SOURCES.index(state.source),
        state.session,
        orjson.dumps(flaps).decode() if len(flaps) > 1 else None,
        repr(flaps[0]) if len(flaps) == 1 else None,
        int(state.flapping),
        extra.get("created_at", T0),
        extra.get("updated_at", T0),
    )


def test_load_fills_the_columns_from_stored_rows() -> None:
    stale = DeviceState(
        status=Status.STALE,
        since=T0 + 2,
        last_seen=T0,
        last_own=T0,
        anchor=T0,
        reason=Reason.STALE_TIMEOUT,
        source=Source.TIMEOUT,
        session=4,
        flaps=(T0, T0 + 2),
        flapping=True,
    )
    rows = [
        _row("a", "default", new_device(T0)),
        _row(
            "b",
            "fast",
            stale,
            labels='{"site":"x"}',
            attributes=b'{"fw":2}',
            metrics={"t": 1.5},
            updated_at=T0 + 1,
        ),
    ]
    profiles = {"default": PROFILE, "fast": Profile(name="fast")}
    table = DeviceTable()
    table.load(rows, profiles.__getitem__)
    assert table.index == {"a": 0, "b": 1}
    assert table.state(0) == new_device(T0)
    assert table.state(1) == stale
    assert table.labels == {1: {"site": "x"}}
    assert table.attributes == {1: {"fw": 2}}
    assert table.metrics == {1: {"t": 1.5}}
    assert table.profile_of(1).name == "fast"
    assert (table.created_at[1], table.updated_at[1]) == (T0, T0 + 1)
    with pytest.raises(ValueError, match="repeat"):
        table.load(rows[:1], profiles.__getitem__)


@given(st.lists(states, max_size=12), st.integers(1, 5))
def test_a_batched_load_builds_the_table_adding_each_device_builds(
    stored: list[DeviceState], batch: int
) -> None:
    """Loading stored rows batch by batch gives each device the number, state and
    columns that adding the devices one by one gives."""
    rows = [
        _row(f"d{i}", "default", state, labels=None if i % 3 else '{"k":"v"}', created_at=T0 + i)
        for i, state in enumerate(stored)
    ]
    loaded = DeviceTable()
    for first in range(0, len(rows), batch):
        loaded.load(rows[first : first + batch], {"default": PROFILE}.__getitem__)
    added = DeviceTable()
    for i, state in enumerate(stored):
        n = added.add(f"d{i}", state, PROFILE, T0 + i, T0)
        if i % 3 == 0:
            added.labels[n] = {"k": "v"}
    assert loaded.index == added.index
    for n in range(len(stored)):
        assert loaded.state(n) == added.state(n) == stored[n]
    for column in ("created_at", "updated_at", "profile", "status", "reason", "source"):
        assert getattr(loaded, column) == getattr(added, column)
    assert loaded.flapping == added.flapping
    assert (loaded.labels, loaded.sessions, loaded.flaps) == (
        added.labels,
        added.sessions,
        added.flaps,
    )
    assert loaded.status_histogram() == added.status_histogram()


def test_load_needs_a_table_without_free_numbers() -> None:
    table = DeviceTable()
    table.add("a", new_device(T0), PROFILE, T0, T0)
    table.remove("a")
    with pytest.raises(RuntimeError):
        table.load([_row("b", "default", new_device(T0))], {"default": PROFILE}.__getitem__)


def test_refresh_moves_only_the_times_of_an_online_device_before_its_deadline() -> None:
    table = DeviceTable()
    online = DeviceState(status=Status.ONLINE, since=T0, last_seen=T0, last_own=T0, anchor=T0)
    n = table.add("d", online, PROFILE, T0, T0)
    assert not table.refresh(n, T0 + 1)  # nothing scheduled: the engine decides
    table.scheduled[n] = T0 + 40
    assert table.refresh(n, T0 + 5)
    assert table.state(n) == DeviceState(
        status=Status.ONLINE, since=T0, last_seen=T0 + 5, last_own=T0 + 5, anchor=T0 + 5
    )
    assert not table.refresh(n, T0 + 40)  # due


def test_entries_is_a_read_only_mapping_of_rows() -> None:
    table = DeviceTable()
    entries = Entries(table)
    assert isinstance(entries, Mapping)
    assert len(entries) == 0
    assert list(entries) == []
    table.add("a", new_device(T0), PROFILE, T0, T0 + 1)
    b = table.add("b", new_device(T0), PROFILE, T0, T0)
    table.attributes[b] = {"fw": 1}
    assert set(entries) == {"a", "b"}
    assert len(entries) == 2
    assert "a" in entries
    assert "z" not in entries
    assert 3 not in entries
    assert entries.get("z") is None
    assert entries.get("z", "none") == "none"
    with pytest.raises(KeyError):
        entries["z"]
    row = entries["b"]
    assert row.state == new_device(T0)
    assert row.profile is PROFILE
    assert row.attributes == {"fw": 1}
    assert row.labels is EMPTY
    assert row.metrics is EMPTY
    assert row.scheduled is None
    assert entries["a"].updated_at == T0 + 1
    assert entries["a"].created_at == T0
    assert [k for k, _ in entries.items()] == ["a", "b"]
    assert dict(entries.items())["b"].attributes == {"fw": 1}
    assert not hasattr(entries, "__setitem__")
    # A row whose device is gone refuses to answer, even once its number is reused.
    table.remove("b")
    table.add("c", new_device(T0), PROFILE, T0, T0)
    with pytest.raises(LookupError):
        _ = row.state
    assert entries["c"].attributes is EMPTY


@given(states, states)
def test_a_result_from_the_columns_keeps_the_presence_of_its_moment(
    first: DeviceState, second: DeviceState
) -> None:
    table = DeviceTable()
    n = table.add("d", first, PROFILE, T0, T0)
    lazy = BeatResult.of_columns("d", table.presence(n), PROFILE)
    table.set_state(n, second)  # later changes (or the number's reuse) do not leak in
    eager = BeatResult("d", first, PROFILE)
    assert (lazy.status, lazy.since, lazy.last_seen) == (
        first.status,
        first.since,
        first.last_seen,
    )
    assert (eager.status, eager.since, eager.last_seen) == (
        first.status,
        first.since,
        first.last_seen,
    )
    assert lazy.state == first
    assert lazy == eager
    assert lazy != BeatResult("e", first, PROFILE)
