"""The node's asynchronous JSON-RPC clients: web3's AsyncHTTPProvider without its
process-wide session lock.

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
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from eth_typing import URI
from web3 import AsyncHTTPProvider, AsyncWeb3, HTTPProvider, Web3
from web3._utils.http_session_manager import HTTPSessionManager
from web3.types import RPCEndpoint

# web3's request cache, for the chain id alone: web3 asks for it before every eth_call and
# eth_estimateGas (its validation middleware checks a call's chainId against the node's),
# half of a node's RPC requests (14 of 28.6 a second on the local devnet). An endpoint's
# chain does not change; the transaction manager checks each endpoint's chain itself.
_CACHED = {RPCEndpoint("eth_chainId")}


class _LoopSession(HTTPSessionManager):
    """One aiohttp session for one provider's endpoint, made again when the event loop it
    belongs to is closed or another loop asks (what web3's cache keys on), lock-free."""

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
                # as web3's own: no connection kept between requests
                connector=TCPConnector(force_close=True, enable_cleanup_closed=True),
            )
            self._session = current
            # where the provider's disconnect() finds the sessions to close
            self.session_cache.clear()
            self.session_cache.cache(f"{id(loop)}:{endpoint_uri}", current)
        return current


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
