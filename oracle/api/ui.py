"""``/ui/``: the web dashboard, static files shipped in the package (``oracle/api/ui/``).

Only the files named in :data:`ASSETS` are served (no path from the URL reaches the file
system); any other ``/ui/...`` path is an HTML 404 page. Every response carries a strict
Content-Security-Policy: scripts and styles from this origin only (no inline script, no
eval), requests to this origin only, so data shown by the page can never load or run
anything even if it slipped past the page's own escaping (it inserts text only).

``/ui/members.json`` tells the page whose APIs to read: a node serves itself (base ""),
``mira devnet up`` serves every member through its proxy (oracle.devnet.dashboard).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from aiohttp import web

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "chart.js": "text/javascript; charset=utf-8",
    "pages.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

NOT_FOUND = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found - Mira dashboard</title>
<link rel="stylesheet" href="/ui/style.css"></head>
<body><main class="notfound"><h1>Not found</h1>
<p>The dashboard has no such page. <a href="/ui/">Go to the feeds</a>.</p></main></body></html>
"""


def _asset(name: str) -> bytes:
    return resources.files("oracle.api").joinpath("ui", name).read_bytes()


def not_found() -> web.Response:
    return web.Response(
        body=NOT_FOUND, status=404, content_type="text/html", charset="utf-8", headers=HEADERS
    )


def add_ui_routes(app: web.Application, members: list[dict[str, Any]]) -> None:
    """Serve the dashboard on ``app``; ``members``: ``[{"name", "base"}]``, ``base`` the
    URL prefix under which that member's API answers on this origin."""

    async def index(_: web.Request) -> web.Response:
        return web.Response(body=_asset("index.html"), headers=HEADERS, content_type="text/html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "members.json":
            return web.json_response({"members": members}, headers=HEADERS)
        kind = ASSETS.get(name)
        if kind is None:
            return not_found()
        return web.Response(body=_asset(name), headers={**HEADERS, "Content-Type": kind})

    async def bare(_: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/")

    app.router.add_get("/ui", bare)
    app.router.add_get("/ui/", index)
    app.router.add_get("/ui/{name:.*}", asset)
