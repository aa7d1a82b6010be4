"""The node's REST API (aiohttp): health, readiness, feeds, models, Prometheus metrics.

Every error is JSON ``{"error": {"status": ..., "message": ...}}`` with the matching
status code; request bodies are capped (``client_max_size``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oracle.node.service import Health

if TYPE_CHECKING:
    from oracle.node.node import Node

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason or "error")
    except Exception:  # never leak a traceback to a client
        return _error(500, "internal error")


def make_app(node: Node, *, max_body_bytes: int = 64 * 1024) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=max_body_bytes)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "node": node.config_name})

    async def readyz(_: web.Request) -> web.Response:
        health: Health = node.health()
        return web.json_response(health.as_dict(), status=200 if health.ok else 503)

    async def feeds(_: web.Request) -> web.Response:
        return web.json_response({"feeds": [r.status() for r in node.runners.values()]})

    async def feed(request: web.Request) -> web.Response:
        feed_id = request.match_info["feed_id"]
        runner = node.runners.get(feed_id)
        if runner is None:  # one arm's feed of a policy feed: its policy feed answers
            runner = next(
                (r for r in node.runners.values() if any(o.id == feed_id for o in r.spec.outputs)),
                None,
            )
        if runner is None:
            return _error(404, f"no feed {feed_id!r}")
        return web.json_response(runner.status())

    async def models(_: web.Request) -> web.Response:
        out: list[dict[str, Any]] = []
        for runner in node.runners.values():
            spec = runner.spec
            out.append(
                {
                    "feed": spec.id,
                    "spec_version": spec.version,
                    "spec_digest": "0x" + spec.digest.hex(),
                    "steps": [s.canonical() for s in spec.model.steps] if spec.model else [],
                    "model_commitment": "0x" + runner.pipeline.model.commitment().hex(),
                    "metrics": runner.pipeline.model.metrics(),
                }
            )
        return web.json_response({"models": out})

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(node.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/feeds", feeds)
    app.router.add_get("/v1/feeds/{feed_id:.+}", feed)
    app.router.add_get("/v1/models", models)

    async def network(_: web.Request) -> web.Response:
        service = getattr(node, "network", None)
        if service is None:
            return _error(404, "this node runs no [network]")
        return web.json_response(service.status())

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/network", network)
    return app
