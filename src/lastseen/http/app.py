"""The ASGI application: routes, error translation, security layers, and lifecycle.

Request path, outermost first:

1. ``ProxyHeadersMiddleware`` (only with ``--trusted-proxy``): the client address and
   scheme from ``X-Forwarded-For`` / ``X-Forwarded-Proto``, believed only when the
   connection comes from a trusted proxy.
2. ``CORSMiddleware`` (only with ``--cors-origin``): browsers elsewhere are refused by
   default because no CORS header is ever sent.
3. ``SecurityHeaders``: CSP and friends on HTML pages.
4. ``Guard``: keys, permissions, rate limits, stream owners, audit (``/v1`` only).
5. the routes, with ``LastseenError`` → ``{"code", "message"}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from lastseen.errors import LastseenError
from lastseen.http import audit, dashboard, devices, health, keys, streams, uptime
from lastseen.http.auth import Guard
from lastseen.http.headers import SecurityHeaders
from lastseen.http.heartbeat import Ingest, IngestApp
from lastseen.http.openapi import docs_page, spec
from lastseen.http.responses import JSONResponse, error
from lastseen.hub.api import HubAPI
from lastseen.notify import routes as notify_routes
from lastseen.notify.service import Notifier
from lastseen.notify.wiring import build_notifier
from lastseen.security import Security
from lastseen.security.service import BootstrapHook

log = logging.getLogger("lastseen.http")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
OPEN_WARNING = (
    "authentication is disabled (--open): anyone who can reach this hub can read and "
    "change everything"
)


async def _lastseen_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LastseenError)
    hub: HubAPI = request.app.state.hub
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


async def _internal_error(request: Request, exc: Exception) -> Response:
    # A bug, not a refusal: the traceback goes to the log (the server re-raises),
    # the client gets the usual error shape without internals.
    log.error("event=internal_error path=%s error=%s", request.url.path, type(exc).__name__)
    return error(500, "internal_error", "the hub failed to handle this request")


async def _openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def _docs(request: Request) -> Response:
    return HTMLResponse(docs_page())


async def _healthz(request: Request) -> Response:
    """``/healthz`` of the health module, plus how requests are authenticated."""
    security: Security = request.app.state.security
    answer = await health.healthz(request)
    body = orjson.loads(bytes(answer.body))
    body["auth"] = security.auth_mode
    if security.open:
        body["warning"] = OPEN_WARNING
    return JSONResponse(body, status_code=answer.status_code)


def _middleware(hub: HubAPI, security: Security) -> list[Middleware]:
    settings = hub.settings
    layers = []
    if settings.trusted_proxy:
        trusted = list(settings.trusted_proxy)
        layers.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted))
    if settings.cors_origin:
        layers.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origin),
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
                max_age=600,
            )
        )
    layers.append(Middleware(SecurityHeaders, tls=settings.tls_cert is not None))
    layers.append(Middleware(Guard, hub=hub, security=security))
    return layers


class Service(Protocol):
    """Something that runs beside the hub (the MQTT bridge): started after the hub,
    stopped before it; ``/readyz`` is not ready while ``ready()`` is false."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def ready(self) -> bool: ...


def create_app(
    hub: HubAPI,
    *,
    on_bootstrap: BootstrapHook | None = None,
    security: Security | None = None,
    services: Sequence[Service] = (),
    notifier: Notifier | None = None,
) -> Starlette:
    """The hub's web application. Starting it (ASGI lifespan) starts the hub.

    ``on_bootstrap`` is told the first admin key of a fresh store (``lastseen serve``
    prints it once). ``services`` start after the hub and stop before it.
    """
    if security is None:
        security = Security(
            hub.settings,
            hub.store,
            hub.clock,
            hub.broadcaster,
            registry=hub.metrics.registry,
            on_bootstrap=on_bootstrap,
        )
    if notifier is None:
        notifier = build_notifier(hub)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            await security.start()
        except BaseException:
            await hub.stop()
            raise
        started: list[Service] = []
        try:
            if notifier is not None:
                await notifier.start()
            for service in services:
                await service.start()
                started.append(service)
            yield
        finally:
            for service in reversed(started):
                await service.stop()
            if notifier is not None:
                await notifier.stop()
            await security.stop()
            await hub.stop()

    app = IngestApp(
        routes=[
            # The router tries routes in order: the heartbeat route, which carries
            # nearly all traffic, comes first.
            *devices.routes,
            Route("/healthz", _healthz, methods=["GET"]),
            *keys.routes,
            *audit.routes,
            *streams.routes,
            *uptime.routes,
            *notify_routes.routes,
            *health.routes,
            Route("/openapi.json", _openapi, methods=["GET"]),
            Route("/docs", _docs, methods=["GET"]),
            *dashboard.routes,
        ],
        middleware=_middleware(hub, security),
        exception_handlers={
            LastseenError: _lastseen_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.security = security
    app.state.services = tuple(services)
    app.state.notifier = notifier
    app.state.openapi = spec(hub.settings)
    # The ingest routes skip the middleware stack; same guard, same answers.
    app.ingest = Ingest(hub, security)
    return app
