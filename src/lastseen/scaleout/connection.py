"""Redis clients for the shared hub: one URL scheme per topology, short timeouts.

``redis://`` / ``rediss://`` is one server (or a proxy); ``redis+cluster://host:port``
is a Redis Cluster reached through any of its nodes. Every call has a socket timeout
well under a second, so a Redis outage answers 503 quickly instead of hanging a
request; library exceptions are translated to ``Unavailable`` at this edge.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from redis import exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from lastseen.errors import Unavailable

#: Seconds a command may take before the request is answered 503.
COMMAND_TIMEOUT = 0.5

Client = Redis | RedisCluster
#: Connections one client keeps to one server at most.
MAX_CONNECTIONS = 64


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
        return RedisCluster.from_url(plain, max_connections=MAX_CONNECTIONS, **options)
    # A blocking pool: a burst of requests waits (at most ``timeout``) for one of a
    # bounded number of connections instead of failing or opening thousands.
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=timeout, **options
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


#: What a Redis outage looks like to redis-py.
OUTAGE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ClusterDownError, OSError, TimeoutError)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Redis unreachable or failing → ``Unavailable`` (503 ``unavailable``)."""
    try:
        yield
    except OUTAGE as exc:
        raise Unavailable(f"redis is unavailable: {exc}") from exc
    except rexc.RedisError as exc:
        raise Unavailable(f"redis failed: {exc}", code="redis_error") from exc
