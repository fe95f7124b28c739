"""Redis clients for the shared hub: one URL scheme per topology, short timeouts.

``redis://`` / ``rediss://`` is one server (or a proxy); ``redis+cluster://host:port``
is a Redis Cluster reached through any of its nodes. Every call has a socket timeout
well under a second, so a Redis outage answers 503 quickly instead of hanging a
request; library exceptions are translated to ``Unavailable`` at this edge.

A restarted Redis leaves the pool holding connections to the old server, and this
redis-py does not notice before use (its pre-use check is off while maintenance
notifications are "auto", the RESP3 default): the next command on one fails with
``Connection closed by server``. Reads go through ``reading``, which tries once more
on a fresh connection. Writes do not: their error may come after Redis ran them (a
lost reply), and a script that increments the seq and appends to the stream must not
run twice, so a write on a dead connection answers 503 and its caller retries.

A cluster client keeps the same promises, which redis-py's defaults break: by default
``RedisCluster`` repeats every command, writes included, up to 10 more times
(``cluster_error_retry_attempts``, deprecated in favour of ``retry``; only the count is
used) on a connection error, a timeout, ``CLUSTERDOWN`` or an uncovered slot, and
refreshes the topology before each repeat. A heartbeat whose reply timed out would run
again, and a hanging node would answer 503 only after about 11 timeouts. So
``Retry(NoBackoff(), 0)``: one attempt. Nothing else is lost by it: MOVED and ASK are
followed inside that attempt (the node that redirected did not run the command), and
a connection error still marks the node map stale, so the next command refreshes it
(``CLUSTER SLOTS``) first and a failover or restart heals without restarting the hub;
reads go through ``reading`` as on one server. The refresh itself asks the known nodes
one after another, each with the connect timeout, so it is bounded to ``timeout`` as a
whole, and its failure (every node gone) is raised as a ``ConnectionError``, an outage
like any other, instead of redis-py's ``RedisClusterException`` that is no
``RedisError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from redis import exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from lastseen.errors import Unavailable

#: Seconds a command may take before the request is answered 503.
COMMAND_TIMEOUT = 0.5

Client = Redis | RedisCluster
#: Connections one client keeps to one server at most.
MAX_CONNECTIONS = 64
#: Tries after the first for a read whose connection broke, at once (no backoff).
READ_RETRIES = 1
#: A broken read is tried again only if it failed within this many seconds. A dead
#: pooled socket fails in microseconds; a read that failed slowly is an outage, and
#: repeating it would push its 503 past a second. So an outage answers a read within
#: this plus one try: against a server that is gone the try is refused at once, and
#: one that hangs ends it at ``COMMAND_TIMEOUT`` with ``TimeoutError`` (never retried),
#: 0.1 + 0.5 s at most.
RETRY_WITHIN = 0.1

T = TypeVar("T")


def is_cluster(url: str) -> bool:
    return urlsplit(url).scheme in {"redis+cluster", "rediss+cluster"}


def connect(url: str, *, timeout: float = COMMAND_TIMEOUT, cluster: bool = False) -> Any:
    """A client for ``url`` with ``timeout`` on connects and commands."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    if cluster or is_cluster(url):
        plain = url.replace("+cluster", "", 1)
        client = cast(
            _Cluster,
            _Cluster.from_url(
                plain, max_connections=MAX_CONNECTIONS, retry=Retry(NoBackoff(), 0), **options
            ),
        )
        client.refresh_timeout = timeout
        return client
    # A blocking pool: a burst of requests waits (at most ``timeout``) for one of a
    # bounded number of connections instead of failing or opening thousands.
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=timeout, **options
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


class _Cluster(RedisCluster):
    """``RedisCluster`` whose topology refresh takes at most ``refresh_timeout`` and
    fails as an outage (the module docstring says why)."""

    refresh_timeout = COMMAND_TIMEOUT

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        try:
            async with asyncio.timeout(self.refresh_timeout):
                return await super().initialize(
                    additional_startup_nodes_info, last_failed_node_name
                )
        except TimeoutError as exc:
            raise rexc.TimeoutError("the cluster's node map could not be refreshed") from exc
        except rexc.RedisClusterException as exc:
            raise rexc.ConnectionError(str(exc)) from exc


async def reading(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, a read (safe to repeat), tried ``READ_RETRIES`` more times at once if
    its connection broke within ``RETRY_WITHIN``. redis-py closes the broken connection
    before giving it back, and the pool hands out the last one given back first, so
    the next try (usually on that one) connects afresh."""
    started = time.monotonic()
    retry = Retry(NoBackoff(), READ_RETRIES, supported_errors=(rexc.ConnectionError,))

    def fast(_: Exception) -> bool:
        return time.monotonic() - started < RETRY_WITHIN

    return await retry.call_with_retry(call, _ignore, is_retryable=fast)


async def _ignore(_: Exception) -> None:
    """Nothing to do between tries: the failed command already closed its connection."""


#: What a Redis outage looks like to redis-py.
OUTAGE = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    rexc.ClusterDownError,
    rexc.SlotNotCoveredError,  # a cluster whose node for a slot is gone from its map
    OSError,
    TimeoutError,
)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Redis unreachable or failing → ``Unavailable`` (503 ``unavailable``)."""
    try:
        yield
    except OUTAGE as exc:
        raise Unavailable(f"redis is unavailable: {exc}") from exc
    except rexc.RedisError as exc:
        raise Unavailable(f"redis failed: {exc}", code="redis_error") from exc
