"""A real HTTP receiver on loopback, and an in-process hub with real time for webhooks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from lastseen.http.app import create_app
from lastseen.hub.core import Hub
from lastseen.notify.service import Notifier
from lastseen.settings import Settings
from lastseen.store import SQLiteStore
from lastseen.testing import free_port
from tests.notify.threaded import Hook, serve_hook

ADMIN = "notify-test-admin-key"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every POST; answers with ``statuses`` in turn (then 200)."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.requests


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A threaded receiver (for tests whose hubs are real processes)."""
    with serve_hook() as state:
        yield state


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with start_receiver() as state:
        yield state


@contextlib.asynccontextmanager
async def start_receiver() -> AsyncIterator[Receiver]:
    """A receiver on a free loopback port, for as long as the context lasts."""
    state = Receiver()

    async def hook(request: Request) -> Response:
        body = await request.body()
        if state.delay:
            await asyncio.sleep(state.delay)
        status = state.statuses.pop(0) if state.statuses else 200
        state.requests.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
        state.arrived.set()
        return PlainTextResponse("x" * 5000 if status >= 500 else "ok", status_code=status)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
            await asyncio.sleep(0.01)
    state.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield state
    finally:
        server.should_exit = True
        await task


@dataclass
class Live:
    app: Starlette
    hub: Hub
    notifier: Notifier

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("203.0.113.7", 5000))
        return httpx.AsyncClient(
            transport=transport,
            base_url="http://hub",
            headers={"Authorization": f"Bearer {ADMIN}"},
        )


LiveFactory = Callable[..., Awaitable[Live]]

#: Small budgets so failure paths take milliseconds.
FAST = {
    "webhook_allow_private": True,
    "webhook_backoff": 0.02,
    "webhook_backoff_max": 0.05,
    "webhook_max_attempts": 3,
    "webhook_timeout": 2.0,
}


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveFactory]:
    """Start an in-process hub (real clock); several calls reuse ``tmp_path``'s files,
    so a second start after the first is stopped is a restart."""
    async with contextlib.AsyncExitStack() as stack:
        running: list[contextlib.AsyncExitStack] = []

        async def factory(**overrides: Any) -> Live:
            values: dict[str, Any] = {"admin_key": ADMIN, "key_refresh": 3600.0, **FAST}
            values.update(overrides)
            hub = Hub(Settings(**values), SQLiteStore(tmp_path / "hub.db"))
            app = create_app(hub)
            inner = contextlib.AsyncExitStack()
            await inner.enter_async_context(app.router.lifespan_context(app))
            running.append(inner)
            stack.push_async_callback(inner.aclose)
            return Live(app, hub, app.state.notifier)

        yield factory
