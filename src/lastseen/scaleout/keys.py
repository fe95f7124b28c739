"""The Redis key layout of one hub: every key carries the same hash tag.

A Redis Cluster runs a script only on keys of one slot, and every presence script
touches the device, the deadline index, the seq counter and the stream at once (the
seq must be fleet-wide and the stream in seq order), so all of one hub's keys share
the tag ``{<prefix>}`` and live in one slot. A cluster then gives the hub failover
and lets other tenants' hubs (other prefixes) live on other shards; one hub's
presence traffic is served by one master. docs/scale-out.md explains the sizing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Names of one hub's keys under ``prefix``."""

    prefix: str = "ls"

    @property
    def tag(self) -> str:
        return "{" + self.prefix + "}"

    def device(self, device_id: str) -> str:
        """Hash of the device's presence, profile, labels, metrics."""
        return f"{self.tag}:d:{device_id}"

    @property
    def device_prefix(self) -> str:
        return f"{self.tag}:d:"

    def attributes(self, device_id: str) -> str:
        """Hash of the device's attributes, one field per key (JSON values)."""
        return f"{self.tag}:a:{device_id}"

    @property
    def attributes_prefix(self) -> str:
        return f"{self.tag}:a:"

    @property
    def deadlines(self) -> str:
        """Sorted set: device id scored by its next deadline."""
        return f"{self.tag}:deadlines"

    @property
    def ids(self) -> str:
        """Sorted set of every device id (score 0): ordered listing by id."""
        return f"{self.tag}:ids"

    @property
    def seq(self) -> str:
        return f"{self.tag}:seq"

    @property
    def stream(self) -> str:
        """Stream of transitions, entry id ``<seq>-0``."""
        return f"{self.tag}:events"

    @property
    def dirty(self) -> str:
        """Set of devices whose last_seen/attributes the store has not caught up with."""
        return f"{self.tag}:dirty"

    @property
    def seen(self) -> str:
        """Sorted set: device id scored by its last_seen, the last few seconds only (the
        ``seen`` ticks of every instance, scaleout/seen.py)."""
        return f"{self.tag}:seen"

    @property
    def counts(self) -> str:
        """Hash: devices per status."""
        return f"{self.tag}:counts"

    @property
    def outbox_lease(self) -> str:
        """Which instance drains the stream into the store now (a lease, not a leader:
        any instance takes it over when it lapses)."""
        return f"{self.tag}:outbox:lease"

    def limiter(self, name: str, subject: str) -> str:
        return f"{self.tag}:rl:{name}:{subject}"

    def observe_keys(self, device_id: str) -> list[str]:
        return [
            self.device(device_id),
            self.attributes(device_id),
            self.deadlines,
            self.seq,
            self.stream,
            self.ids,
            self.dirty,
            self.counts,
            self.seen,
        ]
