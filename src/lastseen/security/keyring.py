"""The keys a hub accepts, cached in memory: one dict lookup per request, no SQL.

A presented secret ``lsk_<id>_<random>`` is split into a public *selector* (the id)
and the whole string as *verifier*: the id finds the key (timing may reveal which
ids exist: they are not secret), then the SHA-256 of the secret is compared with the
stored digest in constant time (``hmac.compare_digest``), so nothing about a real
secret leaks through timing.

The store holds every key (as a digest) and is the truth; ``KeyRing`` mirrors the
active ones as ``{digest: Principal}``. Changes made through this ring update the
mirror at once; changes made elsewhere (``lastseen keys --data-dir`` while the hub
runs, another hub instance) are noticed by ``refresh()``, which the app calls every
``key_refresh`` seconds and which costs one read of ``keys_version`` when nothing
changed. Revocation closes the key's open streams through ``on_revoked``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from lastseen.clock import Clock
from lastseen.errors import Conflict, InvalidInput, NotFound
from lastseen.security import tokens
from lastseen.security.permissions import KEY_ROLES, Principal, Role
from lastseen.security.ratelimit import Rate
from lastseen.store import KeyRecord, Store

log = logging.getLogger("lastseen.security")

#: The id under which ``LASTSEEN_ADMIN_KEY`` appears (it is not in the store).
ENV_KEY_ID = "env"
MAX_NAME = 128


class KeyRing:
    """Active keys by digest, plus every stored key by id (for listing)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        env_admin_key: str | None = None,
        default_key_rate: int = 0,
        on_revoked: Callable[[str], object] = lambda _key_id: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._default_rate = default_key_rate
        self._on_revoked = on_revoked
        self._env: tuple[bytes, Principal] | None = None
        if env_admin_key:
            principal = Principal(ENV_KEY_ID, "LASTSEEN_ADMIN_KEY", Role.ADMIN)
            self._env = (tokens.digest(env_admin_key.encode()), principal)
        self._by_id: dict[bytes, tuple[bytes, Principal]] = {}
        self.records: dict[str, KeyRecord] = {}
        self.version = -1
        self._rebuild([])

    # ------------------------------------------------------------------ the hot path

    def lookup(self, secret: bytes) -> Principal | None:
        """The principal for a presented secret, or None: a dict lookup by the public
        id, one SHA-256 and a constant-time compare (about a microsecond)."""
        key_id = tokens.selector(secret)
        if key_id is not None:
            entry = self._by_id.get(key_id)
            if entry is not None:
                stored, principal = entry
                return principal if tokens.same(stored, tokens.digest(secret)) else None
        env = self._env
        if env is not None and tokens.same(env[0], tokens.digest(secret)):
            return env[1]
        return None

    @property
    def has_env_key(self) -> bool:
        return self._env is not None

    # ------------------------------------------------------------------ loading

    def _principal(self, record: KeyRecord) -> Principal:
        role = Role(record.role)
        per_minute = record.max_per_minute
        if not per_minute and role in (Role.READ, Role.INGEST):
            per_minute = self._default_rate
        return Principal(
            key_id=record.id,
            name=record.name,
            role=role,
            device_id=record.device_id,
            rate=Rate.of(per_minute=per_minute),
        )

    def _rebuild(self, records: Iterable[KeyRecord]) -> None:
        by_id = {record.id: record for record in records}
        active = {
            record.id.encode(): (record.digest, self._principal(record))
            for record in by_id.values()
            if record.active
        }
        # Swapped whole: a request never sees a half-built mirror.
        self._by_id = active
        self.records = by_id

    async def load(self) -> None:
        """Read every key from the store (at start, and when another process changed them)."""
        version = await self._store.keys_version()
        records = await self._store.load_keys()
        before = {r.id for r in self.records.values() if r.active}
        self._rebuild(records)
        self.version = version
        for key_id in sorted(before - {r.id for r in records if r.active}):
            self._on_revoked(key_id)

    async def refresh(self) -> bool:
        """Reload if any key changed since the last load; True if it did."""
        if await self._store.keys_version() == self.version:
            return False
        await self.load()
        return True

    # ------------------------------------------------------------------ changes

    async def create(
        self,
        role: Role,
        name: str,
        *,
        created_by: str,
        device_id: str | None = None,
        max_per_minute: int = 0,
        only_if_none: bool = False,
    ) -> tuple[KeyRecord, str] | None:
        """A new key and its secret (shown once). None if ``only_if_none`` and keys exist."""
        if (role is Role.DEVICE) != (device_id is not None):
            raise InvalidInput("a device token needs a device id, and only it", code="invalid_key")
        if not 0 < len(name) <= MAX_NAME or any(c < " " or c == "\x7f" for c in name):
            raise InvalidInput(
                f"a key name must be 1-{MAX_NAME} characters without control characters",
                code="invalid_key",
            )
        if max_per_minute < 0:
            raise InvalidInput("max_per_minute must be >= 0", code="invalid_key")
        prefix = tokens.DEVICE_PREFIX if role is Role.DEVICE else tokens.KEY_PREFIX
        for _attempt in range(3):
            key_id = tokens.new_id()
            secret = tokens.new_secret(prefix, key_id)
            record = KeyRecord(
                id=key_id,
                role=role.value,
                name=name,
                digest=tokens.digest(secret.encode()),
                device_id=device_id,
                max_per_minute=max_per_minute,
                created_at=self._clock.now(),
                created_by=created_by,
            )
            try:
                stored = await self._store.put_key(record, only_if_none=only_if_none)
            except Conflict:
                continue  # a 48-bit id collided; draw again
            if not stored:
                return None
            self._rebuild([*self.records.values(), record])
            log.info(
                "event=key_created key_id=%s role=%s name=%r by=%s",
                key_id,
                role.value,
                name,
                created_by,
            )
            return record, secret
        raise Conflict("could not draw an unused key id")  # pragma: no cover - 2^-144

    async def bootstrap(self) -> tuple[KeyRecord, str] | None:
        """The first admin key of a store that has never had one, else None."""
        if self._env is not None:
            return None
        return await self.create(
            Role.ADMIN, "initial admin key", created_by="bootstrap", only_if_none=True
        )

    async def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key: refused from the next request on, its streams closed."""
        if key_id == ENV_KEY_ID and self._env is not None:
            raise Conflict(
                "the LASTSEEN_ADMIN_KEY key cannot be revoked here: change or unset the "
                "variable and restart the hub",
                code="key_not_revocable",
            )
        record = self.records.get(key_id)
        if record is not None and record.active and self._is_last_admin(record):
            raise Conflict(
                "this is the last active admin key: create another admin key first "
                "(or use lastseen keys --data-dir to recover)",
                code="last_admin_key",
            )
        revoked = await self._store.revoke_key(key_id, self._clock.now())
        if revoked is None:
            raise NotFound(f"no key {key_id!r}")
        self._rebuild([*(r for r in self.records.values() if r.id != key_id), revoked])
        log.info("event=key_revoked key_id=%s role=%s", key_id, revoked.role)
        self._on_revoked(key_id)
        return revoked

    def _is_last_admin(self, record: KeyRecord) -> bool:
        if record.role != Role.ADMIN or self._env is not None:
            return False
        admins = [r for r in self.records.values() if r.active and r.role == Role.ADMIN]
        return len(admins) == 1

    async def revoke_device(self, device_id: str) -> list[str]:
        """Revoke every active token of one device; their ids."""
        ids = [r.id for r in self.records.values() if r.active and r.device_id == device_id]
        for key_id in ids:
            await self.revoke(key_id)
        return ids

    def listing(self) -> list[KeyRecord]:
        """Stored keys (active and revoked) plus the environment key, if any."""
        keys = list(self.records.values())
        if self._env is not None:
            keys.insert(0, KeyRecord(ENV_KEY_ID, Role.ADMIN.value, self._env[1].name, b""))
        return keys


def parse_role(value: object, allowed: Iterable[Role] = KEY_ROLES) -> Role:
    """A role named by a client, limited to ``allowed``."""
    names = [r.value for r in allowed]
    if not isinstance(value, str) or value not in names:
        raise InvalidInput(f"role must be one of {', '.join(names)}", code="invalid_key")
    return Role(value)
