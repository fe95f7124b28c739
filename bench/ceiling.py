"""The ceiling: a trivial Starlette route on the same server stack as the hub.

``python -m bench.ceiling PORT`` serves ``POST /ping`` → ``{"ok": true}`` with uvicorn,
uvloop and httptools and the server settings ``lastseen serve`` uses (no access log, no
proxy-headers layer, no ``Server`` header): the fastest any route of the hub could be.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def ping(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


app = Starlette(routes=[Route("/ping", ping, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        # As lastseen serve (cli/serve.py): uvicorn's defaults would wrap the app in its
        # proxy-headers middleware and write a Server header, work the hub does not do.
        proxy_headers=False,
        server_header=False,
    )
