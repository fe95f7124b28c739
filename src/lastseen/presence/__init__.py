"""The pure presence core: statuses, profiles and the engine. No I/O, no clock reads."""

from lastseen.presence.engine import (
    DeviceState,
    Observation,
    Step,
    Transition,
    advance,
    check_observation,
    new_device,
    next_deadline,
    observe,
)
from lastseen.presence.profile import DEFAULT_PROFILE, Profile, ProfileRegistry
from lastseen.presence.status import OWN_SOURCES, Reason, Source, Status

__all__ = [
    "DEFAULT_PROFILE",
    "OWN_SOURCES",
    "DeviceState",
    "Observation",
    "Profile",
    "ProfileRegistry",
    "Reason",
    "Source",
    "Status",
    "Step",
    "Transition",
    "advance",
    "check_observation",
    "new_device",
    "next_deadline",
    "observe",
]
