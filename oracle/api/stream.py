"""``GET /v1/reports/stream``: every landed report as Server-Sent Events.

Each event is ``event: report`` with ``id: <block>-<round>`` and the JSON payload of
:func:`oracle.reporting.landed.to_json` (report bytes, signature, epoch, round, decoded
updates, transaction hash). ``?feed=ID`` (repeatable; a feed's name or its 0x bytes32 id)
keeps only reports carrying at least one of those feeds; the report is sent whole, since
its signature covers all of it.

Memory is bounded: at most ``max_clients`` streams (more get 503), each with a queue of at
most ``buffer`` events. A client that falls that far behind is sent ``event: lagged`` and
disconnected rather than buffered without end; it reconnects and reads what it missed from
the chain. A comment line every ``keepalive_s`` keeps idle connections (and proxies) open.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from oracle.reporting.landed import LandedReport, to_json

log = structlog.get_logger(__name__)

MAX_FEED_FILTERS = 64
_BYTES32 = re.compile(r"0x[0-9a-fA-F]{64}")


@dataclass(eq=False)
class _Client:
    feeds: frozenset[bytes] | None  # None: every report
    queue: asyncio.Queue[bytes | None]  # None: the node is stopping
    lagged: bool = False

    def wants(self, landed: LandedReport) -> bool:
        return self.feeds is None or not self.feeds.isdisjoint(landed.feed_ids())


@dataclass
class ReportStream:
    """The hub between the node's landed-report scanner (:meth:`publish`) and the API's SSE
    clients (:meth:`handle`). ``resolve`` maps a feed name the node knows to its bytes32 id
    (None if unknown)."""

    registry: CollectorRegistry
    resolve: Callable[[str], bytes | None]
    max_clients: int = 32
    buffer: int = 64
    keepalive_s: float = 15.0
    # the newest landed reports, for GET /v1/reports (the dashboard's recent rounds)
    recent_size: int = 256
    _clients: set[_Client] = field(default_factory=set)
    _closing: bool = False

    def __post_init__(self) -> None:
        self._recent: collections.deque[LandedReport] = collections.deque(maxlen=self.recent_size)
        self.connected = Gauge(
            "mira_stream_clients", "report stream clients connected", registry=self.registry
        )
        self.published = Counter(
            "mira_stream_reports_total",
            "landed reports published to the stream",
            registry=self.registry,
        )
        self.refused = Counter(
            "mira_stream_refused_total",
            "report stream connections refused or dropped",
            ["reason"],
            registry=self.registry,
        )

    def close(self) -> None:
        """End every stream (the API is stopping): a handler left open would hold the API's
        shutdown for aiohttp's whole shutdown timeout."""
        self._closing = True
        for client in self._clients:
            with contextlib.suppress(asyncio.QueueFull):  # full: its writer wakes anyway
                client.queue.put_nowait(None)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, landed: LandedReport) -> None:
        """Queue ``landed`` for every client that wants it; never blocks."""
        self.published.inc()
        self._recent.append(landed)
        body: bytes | None = None
        for client in self._clients:
            if client.lagged or not client.wants(landed):
                continue
            if body is None:
                data = json.dumps(to_json(landed), separators=(",", ":"))
                body = (
                    f"id: {landed.block_number}-{landed.round}\nevent: report\ndata: {data}\n\n"
                ).encode()
            try:
                client.queue.put_nowait(body)
            except asyncio.QueueFull:
                client.lagged = True  # its writer sees the flag and closes the stream

    def recent(self, feeds: frozenset[bytes] | None, limit: int) -> list[LandedReport]:
        """The newest ``limit`` landed reports kept (those carrying one of ``feeds``, if
        given), newest first."""
        out: list[LandedReport] = []
        for landed in reversed(self._recent):
            if feeds is None or not feeds.isdisjoint(landed.feed_ids()):
                out.append(landed)
                if len(out) >= limit:
                    break
        return out

    def feed_filter(self, request: web.Request) -> frozenset[bytes] | None:
        """``?feed=`` of ``request`` as bytes32 ids (None: no filter); 400 if bad."""
        return self._feeds(request)

    def _feeds(self, request: web.Request) -> frozenset[bytes] | None:
        wanted = request.query.getall("feed", [])
        if not wanted:
            return None
        if len(wanted) > MAX_FEED_FILTERS:
            raise web.HTTPBadRequest(
                reason=f"{len(wanted)} feed filters; pass at most {MAX_FEED_FILTERS}"
            )
        out = set()
        for name in wanted:
            if _BYTES32.fullmatch(name):
                out.add(bytes.fromhex(name[2:]))
                continue
            feed_id = self.resolve(name)
            if feed_id is None:
                raise web.HTTPBadRequest(
                    reason=f"unknown feed {name[:80]!r}: pass a feed this node runs "
                    "(GET /v1/feeds) or a 0x-prefixed 32-byte feed id"
                )
            out.add(feed_id)
        return frozenset(out)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        feeds = self._feeds(request)
        if self._closing:
            raise web.HTTPServiceUnavailable(reason="the node is stopping")
        if len(self._clients) >= self.max_clients:
            self.refused.labels("full").inc()
            raise web.HTTPServiceUnavailable(
                reason=f"the report stream serves at most {self.max_clients} clients; retry later"
            )
        client = _Client(feeds, asyncio.Queue(maxsize=self.buffer))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        self._clients.add(client)
        self.connected.set(len(self._clients))
        try:
            await response.prepare(request)
            await response.write(b": mira report stream\n\n")
            while True:
                try:
                    body = await asyncio.wait_for(client.queue.get(), self.keepalive_s)
                except TimeoutError:
                    body = b": keepalive\n\n"
                if body is None or self._closing:
                    break
                if client.lagged:
                    self.refused.labels("lagged").inc()
                    log.info("stream.client_lagged", peer=request.remote)
                    await response.write(
                        b'event: lagged\ndata: {"reason": "the client fell '
                        + str(self.buffer).encode()
                        + b' reports behind; reconnect and read missed reports from the chain"}\n\n'
                    )
                    break
                await response.write(body)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            self._clients.discard(client)
            self.connected.set(len(self._clients))
        return response
