"""The security state of one hub: keys, rate limiters, audit, stream owners.

Built by the app next to the hub and started after it (the store must be open):
``start`` loads the keys, creates the first admin key of a fresh store, and runs two
background loops, one noticing key changes made by other processes and one pruning
the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from lastseen.clock import Clock
from lastseen.errors import StoreUnavailable
from lastseen.hub.broadcast import Broadcaster
from lastseen.metrics import Registry
from lastseen.retention import prune_forever
from lastseen.security.audit import SYSTEM, Auditor
from lastseen.security.keyring import KeyRing
from lastseen.security.permissions import Principal, Role
from lastseen.security.ratelimit import MemoryRateLimiter, RateLimiter
from lastseen.security.streams import StreamOwners
from lastseen.settings import Settings
from lastseen.store import KeyRecord, Store

log = logging.getLogger("lastseen.security")

#: Who every request is when the hub runs with ``--open``.
OPEN_PRINCIPAL = Principal("open", "open mode (no authentication)", Role.ADMIN)

#: Called once with the first admin key's secret; ``lastseen serve`` prints it.
BootstrapHook = Callable[[KeyRecord, str], None]


class Security:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        broadcaster: Broadcaster,
        *,
        registry: Registry | None = None,
        on_bootstrap: BootstrapHook | None = None,
        device_limiter: RateLimiter | None = None,
        key_limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.open = settings.open
        self.owners = StreamOwners(broadcaster)
        self.keyring = KeyRing(
            store,
            clock,
            env_admin_key=settings.admin_key,
            default_key_rate=settings.key_max_per_minute,
            on_revoked=self.owners.close,
        )
        self.auditor = Auditor(store, clock)
        self.device_limiter = device_limiter or MemoryRateLimiter(clock)
        self.key_limiter = key_limiter or MemoryRateLimiter(clock, max_subjects=100_000)
        self._store = store
        self._clock = clock
        self._on_bootstrap = on_bootstrap
        self._tasks: list[asyncio.Task[None]] = []
        if registry is not None:
            self._register_metrics(registry)

    @property
    def auth_mode(self) -> str:
        """``open`` (no authentication) or ``keys``, as /healthz and the log say."""
        return "open" if self.open else "keys"

    def _register_metrics(self, registry: Registry) -> None:
        def active_keys() -> dict[tuple[str, ...], float]:
            counts: dict[tuple[str, ...], float] = {(role.value,): 0.0 for role in Role}
            for record in self.keyring.records.values():
                if record.active:
                    counts[(record.role,)] = counts.get((record.role,), 0.0) + 1
            return counts

        registry.gauge("lastseen_api_keys", "Active API keys by role.", active_keys, ["role"])

        def limiter_sizes() -> dict[tuple[str, ...], float]:
            sizes: dict[tuple[str, ...], float] = {}
            for scope, limiter in (("device", self.device_limiter), ("key", self.key_limiter)):
                if isinstance(limiter, MemoryRateLimiter):
                    sizes[(scope,)] = float(len(limiter))
            return sizes

        registry.gauge(
            "lastseen_rate_limiter_subjects",
            "Devices and keys the in-memory rate limiters currently track.",
            limiter_sizes,
            ["scope"],
        )

    async def start(self) -> None:
        await self.keyring.load()
        mode = self.auth_mode
        if self.open:
            log.warning(
                "event=auth_disabled mode=open warning=%s",
                "'no authentication: anyone who can reach this port can read and change "
                "everything; use only for a local trial'",
            )
        else:
            created = await self.keyring.bootstrap()
            if created is not None:
                record, secret = created
                await self.auditor.record(
                    SYSTEM, "key.created", record.id, "bootstrap", {"role": record.role}
                )
                if self._on_bootstrap is not None:
                    self._on_bootstrap(record, secret)
        await self.auditor.record(
            SYSTEM,
            "config.loaded",
            str(self.settings.config or "-"),
            "startup",
            {
                "auth": mode,
                "env_admin_key": self.keyring.has_env_key,
                "profiles": sorted(p.name for p in self.settings.profiles),
                "tls": self.settings.tls_cert is not None,
                "trusted_proxy": list(self.settings.trusted_proxy),
                "cors_origin": list(self.settings.cors_origin),
            },
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._refresh_keys(), name="key-refresh"),
            loop.create_task(
                prune_forever(
                    "audit", self._store.prune_audit, self.settings.audit_retention, self._clock
                ),
                name="audit-pruner",
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _refresh_keys(self) -> None:
        while True:
            await asyncio.sleep(self.settings.key_refresh)
            try:
                if await self.keyring.refresh():
                    log.info("event=keys_reloaded version=%d", self.keyring.version)
            except StoreUnavailable as exc:
                # An outage of the store (PostgreSQL down): the keys in memory keep
                # answering; one line per round, not a traceback, until it returns.
                log.warning("event=key_refresh_failed reason=%s", exc.code)
            except Exception:  # pragma: no cover - logged, retried next round
                log.exception("event=key_refresh_failed")
