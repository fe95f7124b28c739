"""Security: API keys and device tokens, permissions, rate limits, the audit log.

Everything here is independent of HTTP; ``lastseen.http.auth`` applies it to
requests. See docs/security.md for the threat model.
"""

from lastseen.security.errors import Forbidden, RateLimited, Unauthorized
from lastseen.security.keyring import ENV_KEY_ID, KeyRing
from lastseen.security.permissions import Kind, Principal, Role, allows, classify
from lastseen.security.ratelimit import MemoryRateLimiter, Rate, RateLimiter
from lastseen.security.service import OPEN_PRINCIPAL, Security

__all__ = [
    "ENV_KEY_ID",
    "OPEN_PRINCIPAL",
    "Forbidden",
    "KeyRing",
    "Kind",
    "MemoryRateLimiter",
    "Principal",
    "Rate",
    "RateLimited",
    "RateLimiter",
    "Role",
    "Security",
    "Unauthorized",
    "allows",
    "classify",
]
