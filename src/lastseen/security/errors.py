"""The refusals of the security layer, as ``LastseenError`` children with HTTP codes."""

from __future__ import annotations

import math

from lastseen.errors import LastseenError


class Unauthorized(LastseenError):
    """No key, or a key the hub does not know (never said which)."""

    code = "unauthorized"
    http_status = 401


class Forbidden(LastseenError):
    """A valid key that may not do this."""

    code = "forbidden"
    http_status = 403


class RateLimited(LastseenError):
    """Too many requests for a device or a key; try again after ``retry_after`` seconds."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after: float, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` takes whole seconds; round up so an obedient client succeeds."""
        return str(max(1, math.ceil(self.retry_after)))
