"""The node's REST API (aiohttp): health, readiness, feeds, models, Prometheus metrics, and
the stream of landed reports (:mod:`oracle.api.stream`).

Every error is JSON ``{"error": {"status": ..., "message": ...}}`` with the matching
status code; request bodies are capped (``client_max_size``).

The API reads a node through :class:`NodeView`, the few read-only things it serves, never
the node itself: it sits below the composition root (oracle.node), which builds the view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from oracle.api import history
from oracle.api.history import HistoryStore
from oracle.api.pull import PullApi
from oracle.api.stream import ReportStream
from oracle.api.ui import add_ui_routes
from oracle.config.feeds import FeedSpec
from oracle.config.node import ApiConfig
from oracle.models import FeedModel
from oracle.service import Health

log = structlog.get_logger(__name__)
MAX_METRIC_NAMES = 32  # `name[]` filters in one /metrics request

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ModelHolder(Protocol):
    @property
    def model(self) -> FeedModel: ...


class FeedView(Protocol):
    """What the API reads of one feed's runner."""

    @property
    def spec(self) -> FeedSpec: ...

    @property
    def pipeline(self) -> ModelHolder: ...

    def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class NodeView:
    """What the API serves of a node: its name, health, feeds, metrics and, where the node
    runs ``[network]``, the network service's status and the stream of landed reports."""

    name: str
    health: Callable[[], Health]
    feeds: Mapping[str, FeedView]
    registry: CollectorRegistry
    network: Callable[[], dict[str, Any]] | None = None
    reports: ReportStream | None = None
    # models registered on-chain (oracle.node.registered): one entry per version
    registered: Callable[[], list[dict[str, Any]]] | None = None
    # (model id, version, limit) → that version's stored outputs, None if never run
    registered_outputs: Callable[[int, int, int], dict[str, Any] | None] | None = None
    # the node's database, for the history endpoints (oracle.api.history)
    store: HistoryStore | None = None
    # what the node reads of the chain: block, balances, each feed's on-chain round
    chain: Callable[[], Awaitable[dict[str, Any]]] | None = None
    # the signed pull roots this node keeps (oracle.api.pull), where it signs them
    pull: PullApi | None = None
    # the RL loops of its policy feeds: rewards, regret, arm choices (oracle.node.loop_view)
    loop: Callable[[], Awaitable[dict[str, Any]]] | None = None


def _error(status: int, message: str) -> web.Response:
    if len(message) > 300:
        message = message[:300] + "..."
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


def feed_json(runner: FeedView) -> dict[str, Any]:
    """A feed's status and the spec's publishing rules (heartbeat, deviation threshold)."""
    spec = runner.spec
    return {
        **runner.status(),
        "spec_version": spec.version,
        "heartbeat_s": spec.heartbeat_s,
        "deviation_bps": spec.deviation_bps,
        "deviation_abs": spec.deviation_abs,
    }


def make_app(node: NodeView, *, max_body_bytes: int = 64 * 1024) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=max_body_bytes)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "node": node.name})

    async def readyz(_: web.Request) -> web.Response:
        health: Health = node.health()
        return web.json_response(health.as_dict(), status=200 if health.ok else 503)

    async def feeds(_: web.Request) -> web.Response:
        return web.json_response({"feeds": [feed_json(r) for r in node.feeds.values()]})

    def lookup(feed_id: str) -> FeedView | None:
        runner = node.feeds.get(feed_id)
        if runner is None:  # one arm's feed of a policy feed: its policy feed answers
            runner = next(
                (r for r in node.feeds.values() if any(o.id == feed_id for o in r.spec.outputs)),
                None,
            )
        return runner

    def find(feed_id: str) -> FeedView:
        runner = lookup(feed_id)
        if runner is None:
            raise web.HTTPNotFound(reason=f"no feed {feed_id[:100]!r}")
        return runner

    async def feed(request: web.Request) -> web.Response:
        # feed ids may hold "/" (and so end in "/history"): a whole id that names a feed is
        # that feed; otherwise ".../history" is the history of the feed before it
        feed_id = request.match_info["feed_id"]
        runner = lookup(feed_id)
        if runner is None and feed_id.endswith("/history"):
            return await feed_history(request, feed_id.removesuffix("/history"))
        if runner is None:
            raise web.HTTPNotFound(reason=f"no feed {feed_id[:100]!r}")
        return web.json_response(feed_json(runner))

    async def feed_history(request: web.Request, feed_id: str) -> web.Response:
        runner = find(feed_id)
        if node.store is None:
            return _error(404, "this node keeps no history")
        spec = runner.spec
        mae = runner.pipeline.model.state.mae
        errors = [] if mae is None else list(mae.errors)
        # the database reads run off the event loop: a client paging history must not
        # stall the node's rounds
        outputs = [o.id for o in spec.outputs]
        body = await asyncio.to_thread(
            history.feed_history,
            node.store,
            spec.id,
            outputs,
            spec.features.target,
            errors,
            request,
        )
        return web.json_response(body)

    async def transmissions(request: web.Request) -> web.Response:
        if node.store is None:
            return _error(404, "this node keeps no history")
        body = await asyncio.to_thread(history.transmissions, node.store, request)
        return web.json_response(body)

    async def landed(request: web.Request) -> web.Response:
        if node.reports is None:
            return _error(404, "this node runs no [network]: it follows no oracle's reports")
        return web.json_response(history.reports(node.reports, request))

    async def chain(_: web.Request) -> web.Response:
        if node.chain is None:
            return _error(404, "this node runs no [network]: it reads no chain")
        return web.json_response(await node.chain())

    async def loop(_: web.Request) -> web.Response:
        if node.loop is None:
            return _error(404, "this node shows no learning loop")
        return web.json_response(await node.loop())

    async def models(_: web.Request) -> web.Response:
        out: list[dict[str, Any]] = []
        for runner in node.feeds.values():
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
        registered = [] if node.registered is None else node.registered()
        return web.json_response({"models": out, "registered": registered})

    async def model_outputs(request: web.Request) -> web.Response:
        """GET /v1/models/{id}/outputs?version=V&limit=N: a registered model's outputs and
        commitments as this node stored them (to check against ReportTransmitted)."""
        if node.registered_outputs is None:
            return _error(404, "this node follows no model registry")
        try:
            model_id = int(request.match_info["model_id"])
            version = int(request.query.get("version", "0"))
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return _error(400, "expected integer model id, version and limit")
        if not (1 <= model_id < 2**63 and 0 <= version < 2**63 and 1 <= limit <= 10_000):
            return _error(400, "expected model id ≥ 1, version ≥ 0, limit in [1, 10000]")
        if version == 0:  # the version this node runs (or last ran)
            running = [
                m["version"]
                for m in (node.registered() if node.registered else [])
                if m["id"] == model_id and m["status"] in ("running", "superseded", "deactivated")
            ]
            if not running:
                return _error(404, f"no version of model {model_id} ran on this node")
            version = max(running)
        found = node.registered_outputs(model_id, version, limit)
        if found is None:
            return _error(404, f"model {model_id} version {version} never ran on this node")
        return web.json_response(found)

    async def metrics(request: web.Request) -> web.Response:
        # `?name[]=…` (Prometheus' own exposition filter): only those series, so a reader
        # of one counter does not make a node carrying 10,000 feeds render all of them
        names = request.query.getall("name[]", [])
        if len(names) > MAX_METRIC_NAMES:
            return _error(400, f"{len(names)} metric names, at most {MAX_METRIC_NAMES}")
        registry = node.registry.restricted_registry(names) if names else node.registry
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/feeds", feeds)
    app.router.add_get("/v1/feeds/{feed_id:.+}", feed)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{model_id}/outputs", model_outputs)

    async def network(_: web.Request) -> web.Response:
        if node.network is None:
            return _error(404, "this node runs no [network]")
        return web.json_response(node.network())

    async def reports(request: web.Request) -> web.StreamResponse:
        if node.reports is None:
            return _error(404, "this node runs no [network]: it follows no oracle's reports")
        return await node.reports.handle(request)

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/network", network)
    app.router.add_get("/v1/reports/stream", reports)
    app.router.add_get("/v1/reports", landed)
    app.router.add_get("/v1/transmissions", transmissions)
    app.router.add_get("/v1/chain", chain)
    app.router.add_get("/v1/loop", loop)
    if node.pull is not None:
        node.pull.add_routes(app)
    else:

        async def no_pull(_: web.Request) -> web.Response:
            return _error(404, "this node signs no pull roots ([network] pull_verifier)")

        app.router.add_get("/v1/pull", no_pull)
        app.router.add_get("/v1/pull/stream", no_pull)
    add_ui_routes(app, [{"name": node.name, "base": ""}])
    if node.reports is not None:
        stream = node.reports

        async def end_streams(_: web.Application) -> None:
            stream.close()

        app.on_shutdown.append(end_streams)
    return app


class ApiService:
    """The API as a node service: serves :func:`make_app` on ``[api]`` host and port."""

    name = "api"

    def __init__(self, config: ApiConfig, view: NodeView) -> None:
        self.config = config
        self.view = view
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        cfg = self.config
        self.runner = web.AppRunner(make_app(self.view, max_body_bytes=cfg.max_body_bytes))
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.host, cfg.port)
        await site.start()
        addresses = self.runner.addresses
        self.port = int(addresses[0][1]) if addresses else cfg.port
        log.info("api.listening", host=cfg.host, port=self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def health(self) -> Health:
        return Health(self.runner is not None)
