"""Profiles: how a class of device is judged.

A fast sensor that reports every second and a battery device that wakes every ten
minutes cannot share one timeout, so every device names a profile. Profiles are
values; the registry maps names to them and always has a ``default``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from lastseen.errors import ConfigError

DEFAULT_PROFILE = "default"


def _seconds(value: object) -> bool:
    # bool is an int subclass: ``stale_after = true`` in a TOML file is a mistake, not 1 s.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(name: str, value: float) -> None:
    if not (_seconds(value) and value > 0):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (_seconds(value) and value >= 0):
        raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class Profile:
    """Thresholds and limits for one class of device.

    ``stale_after`` and ``offline_after`` count seconds since the last sign of life;
    ``flap_threshold`` transitions within ``flap_window`` seconds mark a device
    flapping until it has been stable for ``flap_window``.
    """

    name: str = DEFAULT_PROFILE
    stale_after: float = 40.0
    offline_after: float = 300.0
    flap_threshold: int = 6
    flap_window: float = 600.0
    #: Rate limits (enforced by the shell): minimum seconds between processed
    #: heartbeats of one device, and a cap per rolling minute. 0 disables.
    min_interval: float = 0.0
    max_per_minute: int = 0
    #: Seconds between outside probes of a device, 0 = never probed.
    probe_interval: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64:
            raise ConfigError(f"profile name must be 1-64 characters, got {self.name!r}")
        _positive(f"profile {self.name!r}: stale_after", self.stale_after)
        _positive(f"profile {self.name!r}: offline_after", self.offline_after)
        if self.stale_after > self.offline_after:
            raise ConfigError(
                f"profile {self.name!r}: stale_after ({self.stale_after}) must not exceed "
                f"offline_after ({self.offline_after})"
            )
        if not (_count(self.flap_threshold) and self.flap_threshold >= 1):
            raise ConfigError(
                f"profile {self.name!r}: flap_threshold must be an integer >= 1, "
                f"got {self.flap_threshold!r}"
            )
        _positive(f"profile {self.name!r}: flap_window", self.flap_window)
        _non_negative(f"profile {self.name!r}: min_interval", self.min_interval)
        if not (_count(self.max_per_minute) and self.max_per_minute >= 0):
            raise ConfigError(
                f"profile {self.name!r}: max_per_minute must be an integer >= 0, "
                f"got {self.max_per_minute!r}"
            )
        _non_negative(f"profile {self.name!r}: probe_interval", self.probe_interval)

    @property
    def heartbeat_hint(self) -> float:
        """How often a device should beat so one lost beat does not make it stale."""
        return round(self.stale_after / 2, 3)


class ProfileRegistry:
    """Named profiles; ``default`` always exists."""

    __slots__ = ("_profiles",)

    def __init__(self, profiles: Iterable[Profile] = ()) -> None:
        self._profiles: dict[str, Profile] = {DEFAULT_PROFILE: Profile()}
        for profile in profiles:
            self._profiles[profile.name] = profile

    def get(self, name: str) -> Profile:
        """The profile called ``name``; raises ``KeyError`` for an unknown name."""
        return self._profiles[name]

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def __iter__(self) -> Iterator[Profile]:
        return iter(self._profiles.values())

    def __len__(self) -> int:
        return len(self._profiles)

    @property
    def default(self) -> Profile:
        return self._profiles[DEFAULT_PROFILE]
