"""When a subscriber pings its broker, and when it gives the connection up (pure).

MQTT's keep-alive asks the *client* to send a packet at least every ``interval``
seconds (the broker closes a connection silent for 1.5 times that). A subscriber
that only receives sends nothing on its own, so it sends PINGREQ when it has been
quiet for ``interval``; PUBACKs count as traffic. If the broker then stays silent
for another ``interval`` after a ping, the connection is dead even though TCP has
not noticed (a half-open connection after a broker host vanished), and the shell
closes it so the bridge reconnects.

The shell asks ``deadline()`` when to wake and calls ``due(now)`` then, in the way
aioquic exposes ``get_timer``/``handle_timer``: no clock is read here.
"""

from __future__ import annotations

from enum import Enum


class Due(Enum):
    NOTHING = "nothing"
    PING = "ping"
    DEAD = "dead"


class KeepAlive:
    """Keep-alive bookkeeping of one connection; ``interval`` 0 disables it."""

    __slots__ = ("_last_sent", "_ping_at", "interval")

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval
        self._last_sent = now
        self._ping_at: float | None = None

    def sent(self, now: float) -> None:
        """A packet was written."""
        self._last_sent = now

    def received(self) -> None:
        """A packet arrived: the broker is alive."""
        self._ping_at = None

    def deadline(self) -> float | None:
        """When ``due`` must next be called, or None without a keep-alive."""
        if not self.interval:
            return None
        if self._ping_at is not None:
            return self._ping_at + self.interval
        return self._last_sent + self.interval

    def due(self, now: float) -> Due:
        """What to do at ``now``: nothing yet, send a PINGREQ, or close."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return Due.NOTHING
        if self._ping_at is not None:
            return Due.DEAD
        self._ping_at = now
        self._last_sent = now
        return Due.PING
