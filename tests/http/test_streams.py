"""Streams and keys: a revoked key's open SSE and WebSocket streams are closed,
and a key may hold only so many streams. Driven over raw ASGI (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lastseen.errors import StoreUnavailable
from lastseen.security import Role
from tests.http.conftest import AppFactory, Running

pytestmark = pytest.mark.anyio


class Conversation:
    """One ASGI connection: what the app sent, and a way to end it from the client side."""

    def __init__(self, running: Running, scope: dict[str, Any], *received: dict[str, Any]) -> None:
        self.sent: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self._gone = asyncio.Event()
        self._received = list(received)  # what the client sends, in order, then waits
        self._disconnect = {"type": f"{scope['type']}.disconnect"}
        self.task = asyncio.ensure_future(running.app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if self._received:
            return self._received.pop(0)
        await self._gone.wait()
        return self._disconnect

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self.arrived.set()

    async def until(self, predicate: Any) -> None:
        async with asyncio.timeout(5):
            while not predicate(self.sent):
                self.arrived.clear()
                await self.arrived.wait()

    async def hang_up(self) -> None:
        self._gone.set()
        async with asyncio.timeout(5):
            await self.task


def _scope(kind: str, path: str, query: str) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind,
        # What uvicorn says (HTTP 2.3: the app listens for the disconnect).
        "asgi": {"version": "3.0", "spec_version": "2.3" if kind == "http" else "2.4"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"hub")],
        "client": ("203.0.113.7", 50000),
        "server": ("hub", 80),
    }
    if kind == "http":
        scope["method"] = "GET"
    return scope


def sse(running: Running, query: str) -> Conversation:
    scope = _scope("http", "/v1/stream", query)
    return Conversation(running, scope, {"type": "http.request", "body": b"", "more_body": False})


def websocket(running: Running, query: str, *texts: str) -> Conversation:
    """A WebSocket that connects, then sends ``texts`` one after another."""
    return Conversation(
        running,
        _scope("websocket", "/v1/ws", query),
        {"type": "websocket.connect"},
        *({"type": "websocket.receive", "text": text} for text in texts),
    )


def _body(sent: list[dict[str, Any]]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _key_id(running: Running, role: str) -> str:
    return next(r.id for r in running.security.keyring.records.values() if r.role == role)


async def test_revoking_a_key_ends_its_sse_stream_and_only_its(running: Running) -> None:
    read = await running.key(Role.READ)
    mine = sse(running, f"token={read}")
    other = sse(running, f"token={running.admin}")
    for stream in (mine, other):
        await stream.until(lambda sent: b": connected" in _body(sent))
    assert running.security.owners.count(_key_id(running, "read")) == 1
    await running.security.keyring.revoke(_key_id(running, "read"))
    async with asyncio.timeout(5):
        await mine.task  # the response finished on its own
    assert mine.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert not other.task.done()
    await other.hang_up()
    assert len(running.hub.broadcaster.subscribers) == 0


async def test_revoking_a_key_closes_its_websocket(running: Running) -> None:
    read = await running.key(Role.READ)
    ws = websocket(running, f"token={read}")
    await ws.until(lambda sent: any(m["type"] == "websocket.send" for m in sent))
    assert ws.sent[0]["type"] == "websocket.accept"
    await running.security.keyring.revoke(_key_id(running, "read"))
    await ws.until(lambda sent: sent[-1]["type"] == "websocket.close")
    await ws.hang_up()
    assert running.security.owners.count(_key_id(running, "read")) == 0


async def test_a_websocket_without_a_valid_key_is_closed_before_accepting(
    running: Running,
) -> None:
    before = running.rejected("unauthorized")
    ws = websocket(running, "token=wrong")
    async with asyncio.timeout(5):
        await ws.task
    assert ws.sent == [{"type": "websocket.close", "code": 1008, "reason": "unauthorized"}]
    assert running.rejected("unauthorized") == before + 1


async def test_a_key_may_hold_only_so_many_streams(make_app: AppFactory) -> None:
    running = await make_app(max_streams_per_key=2)
    read = await running.key(Role.READ)
    open_streams = [sse(running, f"token={read}") for _ in range(2)]
    for stream in open_streams:
        await stream.until(lambda sent: b": connected" in _body(sent))
    third = sse(running, f"token={read}")
    async with asyncio.timeout(5):
        await third.task
    assert third.sent[0]["status"] == 429
    assert b"too_many_streams" in _body(third.sent)
    await open_streams[0].hang_up()
    fourth = sse(running, f"token={read}")
    await fourth.until(lambda sent: b": connected" in _body(sent))
    for stream in (open_streams[1], fourth):
        await stream.hang_up()


@pytest.mark.parametrize("failing", ["open_stream", "read_snapshot"])
async def test_a_backing_service_failing_after_the_handshake_closes_with_try_again(
    running: Running, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    async def down(*args: object) -> None:
        raise StoreUnavailable("store down", code="store_unavailable")

    monkeypatch.setattr(running.hub, failing, down)
    ws = websocket(running, f"token={await running.key(Role.READ)}")
    async with asyncio.timeout(5):
        await ws.task
    assert ws.sent == [
        {"type": "websocket.accept", "subprotocol": None, "headers": []},
        {"type": "websocket.close", "code": 1013, "reason": "store_unavailable"},
    ]
    assert len(running.hub.broadcaster.subscribers) == 0


async def test_a_resubscription_whose_snapshot_fails_leaves_no_subscriber_behind(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = running.hub.read_snapshot
    calls = 0

    async def second_fails(stream_filter: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise StoreUnavailable("store down", code="store_unavailable")
        return await snapshot(stream_filter)

    monkeypatch.setattr(running.hub, "read_snapshot", second_fails)
    key = await running.key(Role.READ)
    ws = websocket(running, f"token={key}", '{"type": "subscribe", "devices": ["pi"]}')
    async with asyncio.timeout(5):
        await ws.task
    assert ws.sent[-1] == {"type": "websocket.close", "code": 1013, "reason": "store_unavailable"}
    assert calls == 2
    assert len(running.hub.broadcaster.subscribers) == 0
