"""The ASGI application: routes, error translation, auth, and the hub's lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from lastseen.errors import LastseenError
from lastseen.http import devices, health, streams
from lastseen.http.auth import BearerAuth
from lastseen.http.openapi import docs_page, spec
from lastseen.http.responses import JSONResponse, error
from lastseen.hub.core import Hub

log = logging.getLogger("lastseen.http")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _lastseen_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LastseenError)
    hub: Hub = request.app.state.hub
    if exc.http_status < 500:
        hub.metrics.rejected.inc(1.0, exc.code)
    else:
        log.warning("event=request_failed path=%s code=%s", request.url.path, exc.code)
    return error(exc.http_status, exc.code, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    request.app.state.hub.metrics.rejected.inc(1.0, code)
    return error(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def _docs(request: Request) -> Response:
    return HTMLResponse(docs_page())


def create_app(hub: Hub) -> Starlette:
    """The hub's web application. Starting it (ASGI lifespan) starts the hub."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = Starlette(
        routes=[
            *devices.routes,
            *streams.routes,
            *health.routes,
            Route("/openapi.json", _openapi, methods=["GET"]),
            Route("/docs", _docs, methods=["GET"]),
        ],
        middleware=[Middleware(BearerAuth, key=hub.settings.admin_key)],
        exception_handlers={LastseenError: _lastseen_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.openapi = spec()
    return app
