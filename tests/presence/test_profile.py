"""Profiles are validated when built, with a message that names the bad value."""

from __future__ import annotations

import math
import re

import pytest

from lastseen.errors import ConfigError, LastseenError
from lastseen.presence import DEFAULT_PROFILE, Profile, ProfileRegistry

INVALID: list[tuple[dict[str, object], str]] = [
    (
        {"stale_after": 0},
        "profile 'default': stale_after must be a positive number of seconds, got 0",
    ),
    ({"stale_after": -1.0}, "stale_after must be a positive number of seconds, got -1.0"),
    ({"stale_after": math.nan}, "stale_after must be a positive number of seconds, got nan"),
    ({"stale_after": math.inf}, "stale_after must be a positive number of seconds, got inf"),
    ({"stale_after": "40"}, "stale_after must be a positive number of seconds, got '40'"),
    ({"stale_after": True}, "stale_after must be a positive number of seconds, got True"),
    ({"offline_after": 0.0}, "offline_after must be a positive number of seconds, got 0.0"),
    ({"offline_after": -300}, "offline_after must be a positive number of seconds, got -300"),
    ({"offline_after": math.inf}, "offline_after must be a positive number of seconds, got inf"),
    (
        {"name": "sensor", "stale_after": 50.0, "offline_after": 40.0},
        "profile 'sensor': stale_after (50.0) must not exceed offline_after (40.0)",
    ),
    ({"flap_threshold": 0}, "flap_threshold must be an integer >= 1, got 0"),
    ({"flap_threshold": -3}, "flap_threshold must be an integer >= 1, got -3"),
    ({"flap_threshold": 2.5}, "flap_threshold must be an integer >= 1, got 2.5"),
    ({"flap_threshold": True}, "flap_threshold must be an integer >= 1, got True"),
    ({"flap_window": 0}, "flap_window must be a positive number of seconds, got 0"),
    ({"flap_window": math.nan}, "flap_window must be a positive number of seconds, got nan"),
    ({"name": ""}, "profile name must be 1-64 characters, got ''"),
    ({"name": "x" * 65}, f"profile name must be 1-64 characters, got {'x' * 65!r}"),
    ({"min_interval": -0.5}, "min_interval must be a number of seconds >= 0, got -0.5"),
    ({"min_interval": math.inf}, "min_interval must be a number of seconds >= 0, got inf"),
    ({"min_interval": math.nan}, "min_interval must be a number of seconds >= 0, got nan"),
    ({"min_interval": "1"}, "min_interval must be a number of seconds >= 0, got '1'"),
    ({"max_per_minute": -1}, "max_per_minute must be an integer >= 0, got -1"),
    ({"max_per_minute": 2.5}, "max_per_minute must be an integer >= 0, got 2.5"),
    ({"max_per_minute": False}, "max_per_minute must be an integer >= 0, got False"),
    ({"probe_interval": -1}, "probe_interval must be a number of seconds >= 0, got -1"),
    ({"probe_interval": math.inf}, "probe_interval must be a number of seconds >= 0, got inf"),
]


def _label(key: str, value: object) -> str:
    text = repr(value)
    return f"{key}={text}" if len(text) <= 16 else f"{key}-of-{len(str(value))}-chars"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    INVALID,
    ids=["-".join(_label(k, v) for k, v in kw.items()) for kw, _ in INVALID],
)
def test_invalid_profile(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        Profile(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, LastseenError)
    assert info.value.code == "config_invalid"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stale_after": 60.0, "offline_after": 60.0},
        {"stale_after": 1, "offline_after": 2},
        {"stale_after": 0.001, "offline_after": 0.001},
        {"name": "x" * 64},
        {"name": "x"},
        {"flap_threshold": 1, "flap_window": 0.5},
        {"min_interval": 0.0, "max_per_minute": 0, "probe_interval": 0.0},
        {"min_interval": 1, "max_per_minute": 120, "probe_interval": 30},
    ],
    ids=[
        "stale-equals-offline",
        "int-seconds",
        "tiny-thresholds",
        "name-64-chars",
        "name-1-char",
        "flap-threshold-1",
        "limits-off",
        "limits-on",
    ],
)
def test_valid_profile(kwargs: dict[str, object]) -> None:
    profile = Profile(**kwargs)  # type: ignore[arg-type]
    for key, value in kwargs.items():
        assert getattr(profile, key) == value


def test_defaults_are_seed_001s() -> None:
    profile = Profile()
    assert profile.name == DEFAULT_PROFILE == "default"
    assert (profile.stale_after, profile.offline_after) == (40.0, 300.0)
    assert (profile.flap_threshold, profile.flap_window) == (6, 600.0)
    assert (profile.min_interval, profile.max_per_minute, profile.probe_interval) == (0, 0, 0)


def test_labels_do_not_make_profiles_differ() -> None:
    assert Profile(labels={"site": "a"}) == Profile()


@pytest.mark.parametrize(
    ("stale_after", "hint"),
    [(40.0, 20.0), (7, 3.5), (0.25, 0.125), (1 / 3, 0.167)],
    ids=["default", "odd-int", "sub-second", "rounded-to-ms"],
)
def test_heartbeat_hint_is_half_of_stale_after(stale_after: float, hint: float) -> None:
    assert Profile(stale_after=stale_after).heartbeat_hint == hint


# --- registry -----------------------------------------------------------------------


def test_registry_always_has_the_default() -> None:
    registry = ProfileRegistry()
    assert len(registry) == 1
    assert DEFAULT_PROFILE in registry
    assert registry.get(DEFAULT_PROFILE) == Profile()
    assert registry.default is registry.get(DEFAULT_PROFILE)
    assert list(registry) == [Profile()]


def test_registry_get_unknown_name() -> None:
    with pytest.raises(KeyError, match="battery"):
        ProfileRegistry().get("battery")


def test_registry_holds_named_profiles_in_order() -> None:
    sensor = Profile(name="sensor", stale_after=2.0, offline_after=10.0)
    battery = Profile(name="battery", stale_after=900.0, offline_after=3600.0)
    registry = ProfileRegistry([sensor, battery])
    assert len(registry) == 3
    assert list(registry) == [Profile(), sensor, battery]
    assert registry.get("sensor") is sensor
    assert registry.get("battery") is battery
    assert "sensor" in registry
    assert "gateway" not in registry
    assert 42 not in registry


def test_registry_default_can_be_overridden() -> None:
    # `lastseen serve --stale-after 10 --offline-after 60` sets the default profile.
    default = Profile(stale_after=10.0, offline_after=60.0)
    registry = ProfileRegistry([default])
    assert len(registry) == 1
    assert registry.default is default
    assert registry.get(DEFAULT_PROFILE) is default


def test_registry_accepts_any_iterable() -> None:
    registry = ProfileRegistry(Profile(name=f"p{i}") for i in range(3))
    assert [p.name for p in registry] == ["default", "p0", "p1", "p2"]
