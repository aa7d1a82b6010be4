"""p2p over HTTP (aiohttp): one POST per message, the reply (if any) in the response body.

``POST /p2p/v1/message`` takes one sealed message (oracle.p2p.wire) and answers 200 with a
sealed reply, 204 with nothing to say, or 400 with the rejection reason. Replies are
authenticated exactly like requests, and must come from the peer that was asked, for the
same epoch, round and attempt. ``GET /p2p/v1/health`` says who this node is (liveness for
``mira committee status``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import coincurve
import structlog
from aiohttp import web

from oracle.http_body import read_body
from oracle.p2p.auth import Authenticator
from oracle.p2p.errors import MessageRejected, P2PError, PeerUnavailable
from oracle.p2p.wire import REQUEST_TYPES, Envelope, Header, MsgType, seal

log = structlog.get_logger(__name__)

MESSAGE_PATH = "/p2p/v1/message"
HEALTH_PATH = "/p2p/v1/health"

Handler = Callable[[Envelope], Awaitable[bytes | None]]


class ListenError(P2PError):
    """This node cannot listen for p2p messages where its config says."""


def listen_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` now, at the node's start, so a port that is taken
    stops the node with this error instead of leaving it alive and deaf: its peers would
    wait for its DKG messages until their own timeouts (every member's, when t + f is the
    whole committee), with nothing on-chain saying why. ``host`` is an IPv4 or IPv6 address
    or a name, bound in the family it resolves to first (as a server on it would)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        return socket.create_server((host, port), family=found[0][0], backlog=128)
    except OSError as exc:  # socket.gaierror included: a name that does not resolve
        # the bare reason: create_server's own message repeats the address
        code = exc.errno if isinstance(exc.errno, int) else 0  # a resolver's codes are < 0
        reason = os.strerror(code) if code > 0 else (exc.strerror or str(exc))
        raise ListenError(
            f"cannot listen for p2p on {host}:{port} ([network] listen_host, listen_port): {reason}"
        ) from exc


@dataclass(frozen=True)
class Peer:
    index: int
    url: str  # base URL, e.g. http://127.0.0.1:7701
    identity_key: bytes


class Transport:
    """This node's p2p endpoint: a server for incoming messages and a client for peers."""

    def __init__(
        self,
        identity_secret: bytes,
        auth: Authenticator,
        *,
        host: str,
        port: int,
        sock: socket.socket | None = None,
    ) -> None:
        self._key = coincurve.PrivateKey(identity_secret)
        self.identity_key = bytes(self._key.public_key.format(compressed=True))
        self.auth = auth
        self.host, self.port = host, port
        self._sock = sock  # already listening (listen_socket), or None: bind at start
        self.handlers: dict[MsgType, Handler] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- server ---------------------------------------------------------------------------

    def on(self, msg_type: MsgType, handler: Handler) -> None:
        if msg_type not in REQUEST_TYPES:
            raise ValueError(f"{msg_type.name} is a reply type, not a request")
        self.handlers[msg_type] = handler

    async def start(self) -> None:
        app = web.Application(client_max_size=self.auth.max_bytes)
        app.router.add_post(MESSAGE_PATH, self._handle)
        app.router.add_get(HEALTH_PATH, self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site: web.BaseSite
        if self._sock is not None:
            site = web.SockSite(self._runner, self._sock)
        else:
            site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=32)
        self._session = aiohttp.ClientSession(connector=connector)
        log.info("p2p.listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "ok": True,
                "identity_key": "0x" + self.identity_key.hex(),
                "epochs": sorted(self.auth.epochs),
            }
        )

    async def _handle(self, request: web.Request) -> web.Response:
        remote = request.remote or "?"
        try:
            data = await read_body(request.content, self.auth.max_bytes)
        except (TimeoutError, aiohttp.ClientError):
            return web.Response(status=400, text="unreadable body")
        try:
            env = self.auth.open(data, remote=remote, source=remote)
        except MessageRejected as exc:
            return web.Response(status=400, text=exc.reason)
        handler = self.handlers.get(env.header.type)
        if handler is None:
            unexpected = MessageRejected(
                "unexpected_type", f"{env.header.type.name} is not a request here"
            )
            self.auth.reject(unexpected, remote)
            return web.Response(status=400, text=unexpected.reason)
        try:
            reply = await handler(env)
        except MessageRejected as exc:
            # Refused is not delivered: undo the replay record, or the sender's retry would
            # be refused as a replay, which it must take for "the peer has it".
            self.auth.replay.forget(env)
            self.auth.reject(exc, remote)
            return web.Response(status=400, text=exc.reason)
        except Exception as exc:  # a handler bug must not kill the server
            self.auth.replay.forget(env)
            log.exception("p2p.handler_failed", type=env.header.type.name, error=str(exc))
            return web.Response(status=500, text="internal error")
        if reply is None:
            return web.Response(status=204)
        self.auth.metrics.sent_bytes.labels(f"reply_to_{env.header.type.name}").inc(len(reply))
        return web.Response(status=200, body=reply, content_type="application/octet-stream")

    # -- client ---------------------------------------------------------------------------

    def seal(self, header: Header, payload: bytes) -> bytes:
        return seal(header, payload, self._key)

    async def send(
        self,
        peer: Peer,
        header: Header,
        payload: bytes,
        *,
        timeout: float,
        expect: frozenset[MsgType] | None = None,
    ) -> Envelope | None:
        """Send one message; return the authenticated reply (None for 204).

        Raises PeerUnavailable when the peer cannot be reached or refuses the message, and
        MessageRejected (counted) when its reply is not acceptable.
        """
        if self._session is None:
            raise PeerUnavailable("transport is not started")
        data = self.seal(header, payload)
        self.auth.metrics.sent.labels(header.type.name).inc()
        self.auth.metrics.sent_bytes.labels(header.type.name).inc(len(data))
        try:
            async with self._session.post(
                peer.url + MESSAGE_PATH,
                data=data,
                timeout=aiohttp.ClientTimeout(total=timeout),
                headers={"Content-Type": "application/octet-stream"},
            ) as resp:
                body = await read_body(resp.content, self.auth.max_bytes)
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.auth.metrics.send_failures.labels(str(peer.index)).inc()
            raise PeerUnavailable(f"peer {peer.index} ({peer.url}): {type(exc).__name__}") from exc
        if status == 204:
            return None
        if status != 200:
            self.auth.metrics.send_failures.labels(str(peer.index)).inc()
            raise PeerUnavailable(
                f"peer {peer.index} refused {header.type.name}: {status} {body[:200]!r}"
            )
        reply = self.auth.open(body, remote=peer.url)
        rh = reply.header
        if (rh.epoch, rh.round, rh.attempt, rh.sender) != (
            header.epoch,
            header.round,
            header.attempt,
            peer.index,
        ) or (expect is not None and rh.type not in expect):
            wrong = MessageRejected(
                "unexpected_reply",
                f"peer {peer.index} answered {rh.type.name} for epoch {rh.epoch} round "
                f"{rh.round}.{rh.attempt} from sender {rh.sender}",
            )
            self.auth.reject(wrong, peer.url)
            raise wrong
        return reply
