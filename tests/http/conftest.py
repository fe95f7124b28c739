"""The real app in-process: a hub on SQLite in a temp dir, a manual clock, httpx over ASGI.

``make_app(**settings)`` starts one (its lifespan runs: hub, keys, bootstrap) and
returns a ``Running`` with the first admin key's secret and helpers to mint keys.
Profiles: ``default`` (no limits) and ``limited`` (10 s apart, 3 a minute).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from lastseen.clock import ManualClock
from lastseen.http.app import create_app
from lastseen.hub.core import Hub
from lastseen.presence import Profile, ProfileRegistry
from lastseen.security import Role, Security
from lastseen.settings import Settings
from lastseen.store import KeyRecord, SQLiteStore

T0 = 1_800_000_000.0
CLIENT = ("203.0.113.7", 50000)


@dataclass
class Running:
    app: Starlette
    hub: Hub
    security: Security
    clock: ManualClock
    admin: str | None = None
    printed: list[KeyRecord] = field(default_factory=list)

    def client(self, key: str | None = None, *, address: str = CLIENT[0]) -> httpx.AsyncClient:
        """A client sending ``key`` (none if None) from ``address``."""
        transport = httpx.ASGITransport(app=self.app, client=(address, CLIENT[1]))
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(transport=transport, base_url="http://hub", headers=headers)

    def admin_client(self) -> httpx.AsyncClient:
        return self.client(self.admin or self.hub.settings.admin_key)

    async def key(self, role: Role, *, max_per_minute: int = 0) -> str:
        created = await self.security.keyring.create(
            role, f"test {role.value}", created_by="test", max_per_minute=max_per_minute
        )
        assert created is not None
        return created[1]

    async def token(self, device_id: str) -> str:
        async with self.admin_client() as admin:
            answer = await admin.post(f"/v1/devices/{device_id}/token")
        assert answer.status_code == 201, answer.text
        secret: str = answer.json()["secret"]
        return secret

    def rejected(self, code: str) -> float:
        return self.hub.metrics.rejected.get(code)

    def state(self) -> dict[str, Any]:
        """Everything a refusal must leave alone."""
        return {
            device_id: (entry.state, dict(entry.attributes), dict(entry.metrics), entry.profile)
            for device_id, entry in self.hub.entries.items()
        } | {"_seq": self.hub.seq}


def profiles() -> ProfileRegistry:
    return ProfileRegistry(
        [
            Profile(stale_after=40.0, offline_after=300.0),
            Profile(name="limited", min_interval=10.0, max_per_minute=3),
        ]
    )


AppFactory = Callable[..., Awaitable[Running]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def make_app(tmp_path: Path, clock: ManualClock) -> AsyncIterator[AppFactory]:
    async with contextlib.AsyncExitStack() as stack:

        async def factory(**overrides: Any) -> Running:
            values: dict[str, Any] = {
                "profiles": profiles(),
                "flush_interval": 3600.0,
                "key_refresh": 3600.0,
                **overrides,
            }
            hub = Hub(Settings(**values), SQLiteStore(tmp_path / "hub.db"), clock)
            printed: list[KeyRecord] = []
            secrets: list[str] = []

            def on_bootstrap(record: KeyRecord, secret: str) -> None:
                printed.append(record)
                secrets.append(secret)

            app = create_app(hub, on_bootstrap=on_bootstrap)
            await stack.enter_async_context(app.router.lifespan_context(app))
            return Running(
                app,
                hub,
                app.state.security,
                clock,
                admin=secrets[0] if secrets else None,
                printed=printed,
            )

        yield factory


@pytest.fixture
async def running(make_app: AppFactory) -> Running:
    """A keyed hub (first admin key bootstrapped)."""
    return await make_app()
