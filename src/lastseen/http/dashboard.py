"""Serving the dashboard: ``/`` is the page, ``/dashboard/<file>`` its assets.

The files are read from the installed package once, at import, and kept in memory
(a few tens of kilobytes). Every answer carries a strong ``ETag`` (a digest of the
content) and ``Cache-Control: no-cache``: a browser keeps its copy but asks each
time, and an unchanged file costs a ``304`` with no body. So an upgraded hub is never
shown with yesterday's script, and no build step is needed to rename files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lastseen.errors import NotFound

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _load() -> dict[str, Asset]:
    assets = {}
    for entry in resources.files("lastseen.dashboard").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        content_type = _TYPES.get(suffix)
        if content_type is None or not entry.is_file():
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[entry.name] = Asset(body, content_type, etag)
    return assets


ASSETS = _load()


def _serve(request: Request, name: str) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFound(f"no dashboard file {name!r}")
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


async def page(request: Request) -> Response:
    return _serve(request, "index.html")


async def asset(request: Request) -> Response:
    return _serve(request, request.path_params["name"])


routes = [
    Route("/", page, methods=["GET", "HEAD"]),
    Route("/dashboard/{name}", asset, methods=["GET", "HEAD"]),
]
