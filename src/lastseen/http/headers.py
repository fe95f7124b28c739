"""Security headers on the pages a browser renders (the dashboard at ``/``, ``/docs``).

The API under ``/v1`` is JSON for programs and is passed through untouched (its hot
path pays nothing here). Every other response gets ``X-Content-Type-Options:
nosniff``; HTML additionally gets a strict Content Security Policy (same-origin
scripts, styles and connections only; no frames, no plugins, no forms elsewhere),
``X-Frame-Options``, a no-referrer policy and, when served over TLS, HSTS.
"""

from __future__ import annotations

import base64
import hashlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lastseen.http.openapi import DOCS_STYLE


def _style_digest(style: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() + "'"


#: Exactly what the pages need: the dashboard's own script modules and stylesheet
#: (no inline script, no inline style; scripts set styles through the CSSOM, which a
#: CSP does not restrict), the docs page's one style block by digest, API calls and
#: streams to this origin only (CSP 3 ``'self'`` also matches ``ws:``/``wss:`` to the
#: same host and port), and a ``data:`` favicon.
CSP = (
    "default-src 'none'; script-src 'self'; "
    f"style-src 'self' {_style_digest(DOCS_STYLE)}; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HTML_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
_HSTS = (b"strict-transport-security", b"max-age=31536000")
_NOSNIFF = (b"x-content-type-options", b"nosniff")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, tls: bool = False) -> None:
        self.app = app
        self.html_headers = [*_HTML_HEADERS, _HSTS] if tls else _HTML_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name for name, _ in headers}
                extra = [_NOSNIFF]
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    extra += self.html_headers
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
