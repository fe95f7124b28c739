"""Secrets: how keys and device tokens are made, stored and compared.

A key is ``lsk_<id>_<secret>`` and a device token ``lsd_<id>_<secret>``, where the
secret is 32 bytes from the OS's CSPRNG (256 bits). The id is public: it names the
key in listings, the audit log and revocation, and lets a human tell which key a
leaked string is. The hub stores only the SHA-256 digest of the whole string.

Why SHA-256 and not bcrypt/scrypt/argon2: slow hashes protect *low-entropy* human
passwords from offline guessing. A 256-bit random secret cannot be guessed however
fast the hash is, so a slow hash would buy nothing and cost ~100 ms of CPU on every
request (an easy denial of service with made-up keys). A fast digest also lets the
hub find a key with one dict lookup. ``LASTSEEN_ADMIN_KEY`` is chosen by a person
and may be weak; it is never written to the store at all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "lsk"
DEVICE_PREFIX = "lsd"
_ID_LENGTH = 12
_PREFIXES = (KEY_PREFIX.encode() + b"_", DEVICE_PREFIX.encode() + b"_")


def new_id() -> str:
    """A short public key id: 12 hex digits (collisions are refused by the store)."""
    return secrets.token_hex(6)


def new_secret(prefix: str, key_id: str) -> str:
    """The full secret handed to the user once: prefix, id and 256 random bits."""
    return f"{prefix}_{key_id}_{secrets.token_urlsafe(32)}"


def selector(secret: bytes) -> bytes | None:
    """The public id inside a presented ``lsk_<id>_<random>`` secret, or None."""
    end = 4 + _ID_LENGTH
    # "lsk_" + id + "_" + at least one character of the random part.
    if len(secret) > end + 1 and secret[end] == 0x5F and secret[:4] in _PREFIXES:
        return secret[4:end]
    return None


def digest(secret: bytes) -> bytes:
    """What is stored and looked up: SHA-256 of the secret as sent."""
    return hashlib.sha256(secret).digest()


def same(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two digests."""
    return hmac.compare_digest(a, b)
