"""The devnet's dashboard: the node dashboard's pages (oracle.api.ui) over every member.

The page reads ``/ui/members.json`` and then each member's API under ``/m/<i>/``, which this
server forwards to node ``i``. Proxying (rather than letting the page call each node's port)
keeps the page's Content-Security-Policy at ``connect-src 'self'`` and needs no CORS on the
nodes. Only GETs of ``/healthz`` and ``/v1/...`` (not the endless report stream) are
forwarded, with a bounded query, timeout and response size.
"""

from __future__ import annotations

import re

import aiohttp
from aiohttp import web

from oracle.api.server import json_errors
from oracle.api.ui import add_ui_routes
from oracle.http_body import read_body

MAX_QUERY = 2000
MAX_RESPONSE = 4 * 1024 * 1024
TIMEOUT_S = 5.0
_PATH = re.compile(r"healthz|v1/[A-Za-z0-9_.~%/-]{1,400}")


def make_dashboard_app(apis: list[tuple[str, str]]) -> web.Application:
    """``apis``: each member's (name, API base URL), in member order."""
    app = web.Application(middlewares=[json_errors])
    members = [{"name": name, "base": f"/m/{i}"} for i, (name, _) in enumerate(apis)]
    session: dict[str, aiohttp.ClientSession] = {}

    async def open_session(_: web.Application) -> None:
        session["http"] = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S), auto_decompress=True
        )

    async def close_session(_: web.Application) -> None:
        if "http" in session:
            await session["http"].close()

    async def forward(request: web.Request) -> web.Response:
        index_text, path = request.match_info["index"], request.match_info["path"]
        index = int(index_text) if index_text.isdigit() and len(index_text) < 4 else -1
        if not 0 <= index < len(apis):
            raise web.HTTPNotFound(reason=f"no member {index_text[:10]!r}")
        if not _PATH.fullmatch(path) or path.startswith("v1/reports/stream"):
            raise web.HTTPNotFound(reason="the devnet forwards GET /healthz and /v1/... only")
        if len(request.query_string) > MAX_QUERY:
            raise web.HTTPBadRequest(reason=f"query longer than {MAX_QUERY} characters")
        url = f"{apis[index][1]}/{path}"
        try:
            async with session["http"].get(url, params=request.rel_url.query) as upstream:
                body = await read_body(upstream.content, MAX_RESPONSE)
                if len(body) > MAX_RESPONSE:
                    raise web.HTTPBadGateway(reason=f"{apis[index][0]} answered too much")
                return web.Response(
                    body=body, status=upstream.status, content_type="application/json"
                )
        except (aiohttp.ClientError, TimeoutError):
            raise web.HTTPBadGateway(reason=f"{apis[index][0]} does not answer") from None

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    add_ui_routes(app, members)
    app.router.add_get("/m/{index}/{path:.*}", forward)
    app.router.add_get("/", _redirect)
    return app


async def _redirect(_: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")
