"""The node's JSON-RPC clients: web3's HTTP providers, asking the chain id once, and on the
async side without web3's process-wide session lock and with connections kept alive.

web3 (8.0.0, pinned) looks up the aiohttp session of every async request under
``HTTPSessionManager._lock``, a ``threading.Lock`` shared by every provider in the
process, sync ones included, and acquires it through ``run_in_executor``. A request
cancelled while that acquire is pending (a timeout, a task cancelled at shutdown or
reconfiguration) leaves the lock to be taken by the executor thread after its caller
has gone, and never released: from then on every RPC of the process, async or sync,
blocks forever (web3.py issue 3867). A node whose RPC stalled once would stop
transmitting, reading the chain and following the registry until restarted.

:class:`_LoopSession` keeps one session per provider and event loop without any thread
lock: the async path runs on one event loop, where nothing else can interleave between
checking the session and replacing it.

Connections are kept alive and reused. web3's own async session closes each one after its
request (``force_close``): a TCP connect per request, a TLS handshake per request on an
``https://`` provider, and a socket left in TIME_WAIT for a minute each (four devnet nodes
opened ~115 connections a second). A kept-alive connection the server closes just as it is
reused fails the request although the server never answered it: that request, and only
it, is sent once more on a fresh connection (oracle.http_keepalive, the rule the
transaction manager's pool follows too).

The blocking client (:func:`sync_web3`) keeps its connections alive already: web3 caches
one ``requests.Session`` per thread and endpoint, whose urllib3 pool reuses connections
and drops one found closed before reusing it. A connection closed as it is reused fails
that call there (requests retries nothing); its callers' loops retry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from eth_typing import URI
from web3 import AsyncHTTPProvider, AsyncWeb3, HTTPProvider, Web3
from web3._utils.http import DEFAULT_HTTP_TIMEOUT
from web3._utils.http_session_manager import HTTPSessionManager
from web3.types import RPCEndpoint

from oracle.http_keepalive import Attempt, fresh_session, resend_if_found_closed, reuse_trace

# web3's request cache, for the chain id alone: web3 asks for it before every eth_call and
# eth_estimateGas (its validation middleware checks a call's chainId against the node's),
# half of a node's RPC requests (14 of 28.6 a second on the local devnet). An endpoint's
# chain does not change; the transaction manager checks each endpoint's chain itself.
_CACHED = {RPCEndpoint("eth_chainId")}

# An idle connection is not reused after this long (aiohttp closes it): well under the
# idle timeouts servers close on (nginx's keepalive_timeout is 75 s, many RPC providers'
# 60 s or less), so the client nearly always gives up an idle connection before the server
# does, and the race below stays rare. A node calls every second or so: its connections
# seldom idle that long.
_IDLE_S = 15.0
# Connections open at once to one endpoint (aiohttp's default: 100 in all, none per host).
# A node makes a few calls at a time; its widest fan-outs are 16 (the chain view's reads,
# the callback ledger) and the feed list's catch-up (256), whose calls beyond this wait for
# a connection within their timeout rather than open 256 connections to a provider.
_CONNECTIONS_PER_HOST = 32


async def _post(
    session: ClientSession,
    url: URI,
    data: bytes | dict[str, Any],
    kwargs: dict[str, Any],
    attempt: Attempt | None = None,
) -> bytes:
    async with session.post(url, data=data, trace_request_ctx=attempt, **kwargs) as response:
        return await response.read()


class _LoopSession(HTTPSessionManager):
    """One aiohttp session for one provider's endpoint, made again when the event loop it
    belongs to is closed or another loop asks (what web3's cache keys on), lock-free; its
    connections kept alive."""

    def __init__(self) -> None:
        super().__init__(cache_size=1)
        self._session: ClientSession | None = None

    async def async_cache_and_return_session(
        self,
        endpoint_uri: URI,
        session: ClientSession | None = None,
        request_timeout: ClientTimeout | None = None,
    ) -> ClientSession:
        loop = asyncio.get_running_loop()
        current = self._session
        if current is None or current.closed or current._loop is not loop:
            current = session or ClientSession(
                raise_for_status=True,
                connector=TCPConnector(
                    keepalive_timeout=_IDLE_S,
                    limit_per_host=_CONNECTIONS_PER_HOST,
                    # as web3's: TLS transports the server never closes cleanly are aborted
                    enable_cleanup_closed=True,
                ),
                trace_configs=[reuse_trace()],
            )
            self._session = current
            # where the provider's disconnect() finds the sessions to close
            self.session_cache.clear()
            self.session_cache.cache(f"{id(loop)}:{endpoint_uri}", current)
        return current

    async def close(self) -> None:
        """Close the session and its kept-alive connections (a later request opens a new
        one). web3's ``provider.disconnect()`` does the same but logs each at INFO."""
        session, self._session = self._session, None
        self.session_cache.clear()
        if session is not None and not session.closed:
            await session.close()

    async def async_make_post_request(
        self, endpoint_uri: URI, data: bytes | dict[str, Any], **kwargs: Any
    ) -> bytes:
        """POST ``data``, resending it once on a fresh connection when the pooled
        connection it went out on was found closed.

        aiohttp resends such a request only for idempotent HTTP methods, never a POST (and
        web3's retries are off): without this, every server-side idle close that raced a
        reuse would fail one call. Resending is safe for what the node sends: reads, and
        eth_sendRawTransaction, whose signed transaction is the same one by hash however
        often it arrives (a second copy is refused as known or already mined)."""
        timeout = kwargs.get("timeout", DEFAULT_HTTP_TIMEOUT)  # web3 passes the provider's
        if not isinstance(timeout, ClientTimeout):
            timeout = kwargs["timeout"] = ClientTimeout(total=timeout)
        session = await self.async_cache_and_return_session(endpoint_uri)

        async def resend(left: ClientTimeout) -> bytes:
            async with fresh_session(raise_for_status=True) as fresh:
                return await _post(fresh, endpoint_uri, data, {**kwargs, "timeout": left})

        return await resend_if_found_closed(
            lambda attempt: _post(session, endpoint_uri, data, kwargs, attempt),
            resend,
            timeout,
        )


def async_web3(rpc_url: str, *, timeout_s: float, retries: bool = False) -> AsyncWeb3[Any]:
    """An AsyncWeb3 on ``rpc_url``: every call fails after ``timeout_s``; with ``retries``
    False (the node's choice) web3 retries nothing itself, so the caller's own loops retry,
    count and log, and an outage stays visible and bounded."""
    kwargs: dict[str, Any] = {} if retries else {"exception_retry_configuration": None}
    provider = AsyncHTTPProvider(
        rpc_url,
        request_kwargs={"timeout": timeout_s},
        cache_allowed_requests=True,
        cacheable_requests=_CACHED,
        **kwargs,
    )
    provider._request_session_manager = _LoopSession()
    return AsyncWeb3(provider)


async def close_async_web3(w3: AsyncWeb3[Any]) -> None:
    """Close ``w3``'s connections (its owner is stopping): an :func:`async_web3`'s quietly,
    any other through its provider's ``disconnect``."""
    manager = getattr(w3.provider, "_request_session_manager", None)
    if isinstance(manager, _LoopSession):
        await manager.close()
    else:
        await w3.provider.disconnect()


def sync_web3(rpc_url: str, *, timeout_s: float, retries: bool = False) -> Web3:
    """A blocking Web3 on ``rpc_url`` (worker threads: the chain-event sources, the model
    registry's follower), asking the chain id once, as :func:`async_web3` does."""
    kwargs: dict[str, Any] = {} if retries else {"exception_retry_configuration": None}
    provider = HTTPProvider(
        rpc_url,
        request_kwargs={"timeout": timeout_s},
        cache_allowed_requests=True,
        cacheable_requests=_CACHED,
        **kwargs,
    )
    return Web3(provider)
