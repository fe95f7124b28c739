"""The one exception hierarchy of lastseen.

Library exceptions are translated into these at the boundary (``raise X(...) from exc``)
so callers only ever catch ``LastseenError`` and its children. Errors that reach an
HTTP client carry a stable machine-readable ``code`` and a human ``message``.
"""

from __future__ import annotations


class LastseenError(Exception):
    """Root of every error lastseen raises on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(LastseenError):
    """A flag, environment variable or config file value is invalid."""

    code = "config_invalid"


class InvalidInput(LastseenError):
    """A request or message was malformed; nothing was changed."""

    code = "invalid_input"
    http_status = 400


class NotFound(LastseenError):
    code = "not_found"
    http_status = 404


class Conflict(LastseenError):
    code = "conflict"
    http_status = 409


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    http_status = 413


class Unavailable(LastseenError):
    """A backing service is down; the request can be retried later."""

    code = "unavailable"
    http_status = 503


class StoreError(LastseenError):
    """The durable store failed; translated from the driver's exception."""

    code = "store_error"
    http_status = 503


class StoreUnavailable(StoreError, Unavailable):
    """The store's server cannot be reached (down, refusing, too slow to answer).

    Both a ``StoreError`` and an ``Unavailable``: retrying later may succeed.
    """

    code = "store_unavailable"
