"""A request that went out on a kept-alive connection the server had just closed is sent
once more, on a fresh connection; nothing else is.

A server closes an idle kept-alive connection on its own clock (nginx after 75 s, Node.js
after 5 s, many RPC providers after 60 s or less). When the client reuses the connection
just as the server closes it, the request fails although the server never answered it,
and aiohttp resends such a request only for idempotent HTTP methods, never a POST. Every
JSON-RPC client of the node posts, so each would fail one call per race: the node's web3
clients (oracle.chain.rpc) a read, the transaction manager's pool
(oracle.transmission.rpc) a call that then demotes a healthy endpoint for its penalty time.

The rule, in one place: resend only when the failure is one of :data:`FOUND_CLOSED` and
the request went out on a pooled connection (:class:`Attempt`, filled by the trace of
:func:`reuse_trace`), and only within what is left of the request's timeout; resend on a
connection of its own (another pooled one, as old, may be closed too). A connection that
could not be opened, a timeout, an HTTP error, or a failure on a fresh connection is the
caller's to handle. Resending is safe for what the node sends: reads, and signed
transactions, which are the same transaction by hash however often they arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, TypeVar

from aiohttp import (
    ClientConnectionResetError,
    ClientConnectorError,
    ClientOSError,
    ClientSession,
    ClientTimeout,
    ServerDisconnectedError,
    TCPConnector,
    TraceConfig,
    TraceConnectionCreateEndParams,
    TraceConnectionReuseconnParams,
)

T = TypeVar("T")

# How a request fails when the server closed its kept-alive connection just as the client
# reused it (the server never saw the request, or dropped it unanswered): aiohttp's own
# rule for resending an idempotent request on a persistent connection (RFC 9112 §9.3.1,
# aiohttp/client.py), and a write to a connection already closing. A connector error (a
# subclass of ClientOSError) is a fresh connection's (refused, unreachable): never resent.
FOUND_CLOSED = (ServerDisconnectedError, ClientOSError, ClientConnectionResetError)


class Attempt:
    """One request's trace context (``trace_request_ctx``): whether it went out on a
    pooled connection."""

    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = False


async def _on_reuse(
    _session: ClientSession, ctx: SimpleNamespace, _params: TraceConnectionReuseconnParams
) -> None:
    if isinstance(ctx.trace_request_ctx, Attempt):
        ctx.trace_request_ctx.reused = True


async def _on_create(
    _session: ClientSession, ctx: SimpleNamespace, _params: TraceConnectionCreateEndParams
) -> None:
    if isinstance(ctx.trace_request_ctx, Attempt):  # a redirect's new connection
        ctx.trace_request_ctx.reused = False


def reuse_trace() -> TraceConfig:
    """The trace a session needs for :class:`Attempt` to say whether a request reused a
    connection (``ClientSession(trace_configs=[reuse_trace()])``)."""
    trace = TraceConfig()
    trace.on_connection_reuseconn.append(_on_reuse)
    trace.on_connection_create_end.append(_on_create)
    return trace


def remaining(timeout: ClientTimeout, spent: float) -> ClientTimeout | None:
    """``timeout`` less ``spent`` seconds of its total; None once nothing is left."""
    if timeout.total is None:
        return timeout
    if timeout.total - spent <= 0:
        return None
    return ClientTimeout(
        total=timeout.total - spent,
        connect=timeout.connect,
        sock_read=timeout.sock_read,
        sock_connect=timeout.sock_connect,
        ceil_threshold=timeout.ceil_threshold,
    )


async def resend_if_found_closed(
    send: Callable[[Attempt], Awaitable[T]],
    resend: Callable[[ClientTimeout], Awaitable[T]],
    timeout: ClientTimeout,
) -> T:
    """``send(attempt)`` (a request whose ``trace_request_ctx`` is ``attempt``, on a session
    traced by :func:`reuse_trace`); if it failed as :data:`FOUND_CLOSED` on a pooled
    connection, ``resend(left)``, ``left`` being what remains of ``timeout``, on a
    connection of its own (:func:`fresh_session`). Anything else is raised as it came."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempt = Attempt()
    try:
        return await send(attempt)
    except ClientConnectorError:
        raise
    except FOUND_CLOSED:
        left = remaining(timeout, loop.time() - started)
        if not attempt.reused or left is None:
            raise
    return await resend(left)


def fresh_session(**kwargs: Any) -> ClientSession:
    """A session whose one request goes out on a new connection, closed after it."""
    return ClientSession(connector=TCPConnector(force_close=True), **kwargs)
