"""Rate limits shared by every instance: the GCRA of ``security/ratelimit.py`` as one
Redis script, on Redis's clock.

Each subject is one hash ``{interval_tat, minute_tat}`` that expires when both TATs
have passed (an idle subject is indistinguishable from a new one), so memory is
bounded by the active subjects. The keys carry the hub's hash tag. A Redis that
cannot be reached fails open (the request passes, ``lastseen_redis_errors_total``
counts it): a limiter outage must not become a presence outage, and the heartbeat
itself then answers 503 anyway.
"""

from __future__ import annotations

from typing import Any

from redis import exceptions as rexc

from lastseen.clock import Clock
from lastseen.scaleout.connection import OUTAGE
from lastseen.scaleout.keys import Keys
from lastseen.security.ratelimit import Rate

_GCRA = r"""
local now
if ARGV[3] ~= nil and ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local interval, per_minute = tonumber(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'i', 'm')
local itat, mtat = tonumber(v[1] or '0'), tonumber(v[2] or '0')
local wait = 0
if interval > 0 and itat > now then wait = itat - now end
if per_minute > 0 then
  local emission = 60 / per_minute
  local allowed = mtat - (60 - emission)
  if allowed > now and allowed - now > wait then wait = allowed - now end
end
if wait == 0 then
  if interval > 0 then itat = now + interval end
  if per_minute > 0 then
    if mtat < now then mtat = now end
    mtat = mtat + 60 / per_minute
  end
  redis.call('HSET', KEYS[1], 'i', string.format('%.17g', itat), 'm', string.format('%.17g', mtat))
  local last = itat
  if mtat > last then last = mtat end
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((last - now) * 1000)))
end
return string.format('%.17g', wait)
"""


class RedisRateLimiter:
    """``RateLimiter`` over Redis; ``name`` separates device and key limits."""

    def __init__(
        self, client: Any, keys: Keys, name: str, on_error: Any = None, clock: Clock | None = None
    ) -> None:
        self._client = client
        #: Tests only: replaces Redis's ``TIME`` (see ``RedisHub.script_clock``).
        self._clock = clock
        self._keys = keys
        self._name = name
        self._script = client.register_script(_GCRA)
        self._on_error = on_error

    async def acquire(self, subject: str, rate: Rate) -> float:
        try:
            wait = await self._script(
                keys=[self._keys.limiter(self._name, subject)],
                args=[
                    repr(rate.min_interval),
                    rate.per_minute,
                    "" if self._clock is None else repr(self._clock.now()),
                ],
            )
        except (*OUTAGE, rexc.RedisError):
            if self._on_error is not None:
                self._on_error()
            return 0.0
        return float(wait)
