"""The Python client of the lastseen hub.

    from contextlib import aclosing
    from lastseen.client import HubClient

    async with HubClient("http://127.0.0.1:8080", key) as hub:
        await hub.heartbeat("gateway-7", attributes={"fw": "1.4.2"})
        device = await hub.get_device("gateway-7")
        async with aclosing(hub.stream(after=0)) as events:
            async for event in events:
                if event.event == "transition":
                    print(event.transition())

Every failure is a ``HubError`` (a ``LastseenError``) carrying the HTTP ``status``,
the hub's machine-readable ``code`` and a ``message``; not reaching the hub at all
is a ``HubUnavailable``.
"""

from lastseen.client.errors import HubError, HubUnavailable
from lastseen.client.hub import DEFAULT_URL, MAX_BATCH, MAX_LIMIT, HubClient
from lastseen.client.models import (
    BatchItemResult,
    BatchResult,
    Device,
    DevicePage,
    EventsPage,
    Heartbeat,
    HeartbeatAck,
    StreamEvent,
    Transition,
)
from lastseen.client.resume import Backoff

__all__ = [
    "DEFAULT_URL",
    "MAX_BATCH",
    "MAX_LIMIT",
    "Backoff",
    "BatchItemResult",
    "BatchResult",
    "Device",
    "DevicePage",
    "EventsPage",
    "Heartbeat",
    "HeartbeatAck",
    "HubClient",
    "HubError",
    "HubUnavailable",
    "StreamEvent",
    "Transition",
]
