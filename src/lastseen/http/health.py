"""Operational routes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from lastseen import __version__
from lastseen.http.responses import JSONResponse
from lastseen.hub.api import HubAPI
from lastseen.hub.instruments import rss_bytes


async def healthz(request: Request) -> Response:
    hub: HubAPI = request.app.state.hub
    return JSONResponse(
        {
            "status": "ok" if await hub.ready() is None else "degraded",
            "version": __version__,
            "uptime": round(time.time() - hub.started_at, 3),
            "db_size": await hub.store.size_bytes(),
            "memory_rss": rss_bytes(),
            "devices": await hub.device_count(),
            "seq": await hub.current_seq(),
            "auth": "key" if hub.settings.admin_key else "open",
        }
    )


async def readyz(request: Request) -> Response:
    hub: HubAPI = request.app.state.hub
    reason = await hub.ready()
    if reason is not None:
        return JSONResponse({"ready": False, "reason": reason}, status_code=503)
    for service in getattr(request.app.state, "services", ()):
        if not service.ready():
            return JSONResponse({"ready": False, "reason": service.name}, status_code=503)
    return JSONResponse({"ready": True})


async def metrics(request: Request) -> Response:
    hub: HubAPI = request.app.state.hub
    return PlainTextResponse(
        hub.metrics.registry.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
