"""Pull mode over HTTP (docs/pull.md): ``GET /v1/pull?feeds=ID,ID,…`` and the SSE stream of
signed roots, ``GET /v1/pull/stream``.

``/v1/pull`` answers with ``payload``, the hex bytes a consumer passes to
``MiraPullVerifier.verify`` as they are (oracle.reporting.pull.encode_payload, one
multiproof for all the feeds asked), and the same content as JSON beside it. The root is
the newest kept one carrying every asked feed, or ``?round=`` for a kept round. A feed is a
name this node runs or a 0x bytes32 id. Errors are JSON (oracle.api.server): 400 for a
malformed query or more than ``MAX_PULL_FEEDS`` feeds, 404 for an unknown feed or round,
503 before the committee has signed a root carrying them.

The stream sends ``event: root`` (id: the round) with the root's JSON for each root this
node keeps, led or received; bounded like the report stream: at most ``max_clients``
clients, ``buffer`` events each, a client that falls behind is told ``lagged`` and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from oracle.reporting.pull import encode_payload
from oracle.reporting.pull_store import PullRoots, SignedRoot

log = structlog.get_logger(__name__)

#: Feeds per request: what one payload may prove (its leaves and proof cost the consumer
#: gas, and the multiproof costs this node time); more is a client error, not a queue.
MAX_PULL_FEEDS = 64
_BYTES32 = re.compile(r"0x[0-9a-fA-F]{64}")
_QUERY_MAX = 64 * 80
_ROUND = re.compile(r"[0-9]{1,20}")  # ASCII only: str.isdigit would pass "²" to int()


def root_json(root: SignedRoot) -> dict[str, Any]:
    sig = root.signature
    return {
        "chain_id": root.chain_id,
        "verifier": "0x" + root.verifier.hex(),
        "epoch": root.epoch,
        "round": root.round,
        "leaf_count": root.tree.leaf_count,
        "root": "0x" + root.tree.root.hex(),
        "signature": {
            "px": hex(sig.px),
            "parity": sig.parity,
            "commitment": "0x" + sig.commitment.hex(),
            "z": hex(sig.z),
        },
    }


@dataclass
class PullApi:
    """Serves the kept roots; ``resolve`` maps a feed name to its bytes32 id (or None)."""

    roots: PullRoots
    resolve: Callable[[str], bytes | None]
    max_clients: int = 32
    buffer: int = 64
    keepalive_s: float = 15.0
    _clients: set[asyncio.Queue[bytes | None]] = field(default_factory=set)
    _lagged: set[asyncio.Queue[bytes | None]] = field(default_factory=set)
    _closing: bool = False

    def __post_init__(self) -> None:
        self.roots.subscribe(self._publish)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/pull", self.payload)
        app.router.add_get("/v1/pull/stream", self.stream)

        async def end_streams(_: web.Application) -> None:
            self.close()

        app.on_shutdown.append(end_streams)

    def _feeds(self, request: web.Request) -> list[tuple[str, bytes]]:
        raw = request.query.getall("feeds", [])
        if len(raw) != 1:
            raise web.HTTPBadRequest(reason="pass the feeds once: ?feeds=ID,ID,… (names or ids)")
        if len(raw[0]) > _QUERY_MAX:
            raise web.HTTPBadRequest(reason=f"feeds: over {_QUERY_MAX} characters")
        names = raw[0].split(",")
        if len(names) > MAX_PULL_FEEDS:
            raise web.HTTPBadRequest(
                reason=f"{len(names)} feeds; one payload proves at most {MAX_PULL_FEEDS}"
            )
        out: list[tuple[str, bytes]] = []
        seen: set[bytes] = set()
        for name in names:
            if not name:
                raise web.HTTPBadRequest(reason="feeds: an empty feed name")
            feed_id = bytes.fromhex(name[2:]) if _BYTES32.fullmatch(name) else self.resolve(name)
            if feed_id is None:
                raise web.HTTPNotFound(
                    reason=f"unknown feed {name[:80]!r}: pass a feed this node runs "
                    "(GET /v1/feeds) or a 0x-prefixed 32-byte feed id"
                )
            if feed_id in seen:
                raise web.HTTPBadRequest(reason=f"feeds: {name[:80]!r} asked twice")
            seen.add(feed_id)
            out.append((name, feed_id))
        return out

    async def payload(self, request: web.Request) -> web.Response:
        feeds = self._feeds(request)
        ids = [f for _, f in feeds]
        round_arg = request.query.get("round")
        if round_arg is not None:
            if not _ROUND.fullmatch(round_arg):
                raise web.HTTPBadRequest(reason="round: expected a round number (unix ms)")
            root = self.roots.get(int(round_arg))
            if root is None:
                raise web.HTTPNotFound(reason=f"round {round_arg}: no signed root kept")
            missing = [n for n, f in feeds if not root.tree.carries(f)]
            if missing:
                raise web.HTTPNotFound(reason=f"round {round_arg} carries no {missing[0]!r}")
        else:
            root = self.roots.latest(ids)
            if root is None:
                raise web.HTTPServiceUnavailable(
                    reason="no signed root carrying these feeds yet; retry after a round"
                )
        payload = root.payload(ids)
        by_id = {u.feed_id: u for u in payload.proof.updates}
        body = {
            **root_json(root),
            "payload": "0x" + encode_payload(payload).hex(),
            "values": [
                {
                    "feed": name,
                    "feed_id": "0x" + f.hex(),
                    "value": str(by_id[f].value),
                    "observed_at": by_id[f].observed_at,
                    "model_commitment": "0x" + by_id[f].model_commitment.hex(),
                }
                for name, f in feeds
            ],
            "proof": {
                "leaves": len(payload.proof.updates),
                "proof_nodes": len(payload.proof.proof),
            },
        }
        return web.json_response(body)

    def _publish(self, root: SignedRoot) -> None:
        if not self._clients:
            return
        data = json.dumps(root_json(root), separators=(",", ":"))
        body = f"id: {root.round}\nevent: root\ndata: {data}\n\n".encode()
        for queue in self._clients:
            if queue in self._lagged:
                continue
            try:
                queue.put_nowait(body)
            except asyncio.QueueFull:
                self._lagged.add(queue)

    def close(self) -> None:
        self._closing = True
        for queue in self._clients:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if self._closing:
            raise web.HTTPServiceUnavailable(reason="the node is stopping")
        if len(self._clients) >= self.max_clients:
            raise web.HTTPServiceUnavailable(
                reason=f"the root stream serves at most {self.max_clients} clients; retry later"
            )
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=self.buffer)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        self._clients.add(queue)
        try:
            await response.prepare(request)
            await response.write(b": mira pull root stream\n\n")
            while True:
                try:
                    body = await asyncio.wait_for(queue.get(), self.keepalive_s)
                except TimeoutError:
                    body = b": keepalive\n\n"
                if body is None or self._closing:
                    break
                if queue in self._lagged:
                    await response.write(
                        b'event: lagged\ndata: {"reason": "the client fell behind; reconnect"}\n\n'
                    )
                    break
                await response.write(body)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write_eof()
        except ConnectionError:
            pass
        finally:
            self._clients.discard(queue)
            self._lagged.discard(queue)
        return response
