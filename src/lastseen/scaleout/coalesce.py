"""Automatic pipelining of script calls made in the same event-loop turn.

Under load many requests are in flight at once; each would pay a connection
checkout, a write and a read. The coalescer queues every call made while one
pipeline is being sent and sends them together in the next: each call is still
its own atomic script (a pipeline is not a transaction), and each caller gets its
own reply or error. A queue is bounded by ``MAX_BATCH`` calls per pipeline; a
caller waits at most the command timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

#: Most script calls in one pipeline.
MAX_BATCH = 256


class Coalescer:
    def __init__(self, client: Any, script: AsyncScript) -> None:
        self._client = client
        self._script = script
        self._queue: list[tuple[Sequence[str], Sequence[Any], asyncio.Future[Any]]] = []
        self._sending = False

    async def call(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future))
        if not self._sending:
            self._sending = True
            asyncio.get_running_loop().create_task(self._send())
        return await future

    async def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for keys, args, _ in batch:
                            # evalsha directly: a pipeline with registered scripts would
                            # ask SCRIPT EXISTS first, a round trip every time.
                            pipe.evalsha(self._script.sha, len(keys), *keys, *args)
                        replies = await pipe.execute(raise_on_error=False)
                except BaseException as exc:  # the whole pipeline failed (connection)
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (keys, args, future), reply in zip(batch, replies, strict=True):
                    if future.done():
                        continue
                    if isinstance(reply, NoScriptError):
                        # Redis restarted without the script: loads it, once, and runs.
                        try:
                            future.set_result(await self._script(keys=keys, args=args))
                        except Exception as exc:
                            future.set_exception(exc)
                    elif isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        finally:
            self._sending = False
