"""Reading an answer's body with a size bound, so that a broken proxy or a runaway
answer cannot make the client buffer without limit."""

from __future__ import annotations

import httpx

from lastseen.client.errors import HubError


async def read_capped(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """The body of ``response``, at most ``limit`` bytes: cut there (``truncate``,
    for error answers we only quote) or refused with ``response_too_large``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            if truncate:
                chunks.append(chunk[: limit - (size - len(chunk))])
                break
            raise HubError(
                response.status_code,
                "response_too_large",
                f"the hub's answer is larger than {limit} bytes",
            )
        chunks.append(chunk)
    return b"".join(chunks)
