"""How a batch of inbound messages is applied: in waves, order kept per device.

The bridge takes inbound messages off its queue in batches (one call into the hub per
message would cap throughput far below what a broker delivers). Within a batch,
messages of *different* devices are independent and may be applied concurrently;
messages of the *same* device must be applied in arrival order (a heartbeat followed
by the device's will must end offline). ``waves`` cuts a batch into consecutive
waves in which every device appears in at most one kind of call:

* all heartbeats of a wave go to the hub as one ``heartbeats`` batch (it applies a
  device's repeated beats in order itself);
* every other message of a wave is one call, and no two such calls, nor such a call
  and a heartbeat, concern the same device.

A wave ends where a message would break that rule. Pure: no I/O, no hub.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from lastseen.mqtt.parser import Inbound, Kind


@dataclass(slots=True)
class Wave:
    """Messages that may be applied together: ``beats`` in one batch, ``others`` each
    on their own, concurrently."""

    beats: list[Inbound] = field(default_factory=list)
    others: list[Inbound] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.beats) + len(self.others)


def waves(messages: Iterable[Inbound], *, batch_beats: bool = True) -> Iterator[Wave]:
    """Cut ``messages`` into waves (see the module docstring).

    ``batch_beats=False`` treats heartbeats like any other message (each its own call,
    one per device per wave): strict mode needs a per-call refusal of unknown ids.
    """
    wave = Wave()
    # Per device in the current wave: True if it only has heartbeats in the batch.
    seen: dict[str, bool] = {}
    for message in messages:
        device_id = message.device_id
        beat = batch_beats and message.kind is Kind.HEARTBEAT
        previous = seen.get(device_id)
        if previous is not None and not (beat and previous):
            yield wave
            wave, seen = Wave(), {}
        seen[device_id] = beat
        (wave.beats if beat else wave.others).append(message)
    if wave:
        yield wave
