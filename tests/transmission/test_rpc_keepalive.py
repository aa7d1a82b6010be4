"""The transaction manager's RPC pool keeps its connections alive, and a request that went
out on a kept-alive connection the server had just closed is sent once more on a fresh
one (oracle.http_keepalive) instead of demoting a healthy endpoint: with one endpoint, a
demotion stops every transmission for the penalty time. Anything else still demotes."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from oracle.transmission.errors import RpcUnavailable
from oracle.transmission.metrics import TxMetrics
from oracle.transmission.rpc import RpcPool, parse_quantity
from tests.harness.rpc_server import RpcServer

CHAIN = 31337


def _pool(url: str, timeout: float = 5.0) -> tuple[RpcPool, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = TxMetrics(registry, CHAIN, "0x" + "ab" * 20)
    return RpcPool([url], CHAIN, metrics, timeout=timeout), registry


def _head(value: object) -> int:
    return parse_quantity(value, "head")


async def test_calls_reuse_one_connection() -> None:
    async with RpcServer(chain_id=CHAIN) as server:
        pool, _ = _pool(server.url)
        await pool.start()  # eth_chainId, eth_blockNumber
        for _ in range(20):
            await asyncio.wait_for(pool.request("eth_blockNumber", [], _head), 10)
        await pool.close()
    assert len(server.answered) == 22
    assert server.connections == 1


async def test_a_request_the_servers_idle_close_raced_is_sent_again_and_nothing_is_demoted() -> (
    None
):
    """The server answers two requests a connection and drops the third unanswered, as a
    server closing an idle connection just as it is reused. Four concurrent calls leave
    four pooled connections aging alike: each dropped request goes out again at once, on a
    connection of its own, and every call is answered from the one endpoint."""
    async with RpcServer(drop=lambda n: n >= 2, chain_id=CHAIN) as server:
        pool, registry = _pool(server.url)
        await pool.start()
        await asyncio.gather(*(pool.request("eth_blockNumber", [], _head) for _ in range(4)))
        for _ in range(20):
            await asyncio.wait_for(pool.request("eth_blockNumber", [], _head), 10)
        health = pool.health()
        await pool.close()
    assert server.dropped, "the server closed no connection the client reused"
    assert len(server.answered) == 2 + 24
    assert health == {pool.endpoints[0].name: {"ok": True, "head": pool.endpoints[0].head}}
    labels = {"chain_id": str(CHAIN), "sender": "0x" + "ab" * 20, "reason": "unreachable"}
    assert registry.get_sample_value("mira_tx_rpc_demotions_total", labels) is None
    # each dropped request was sent again right after, on a connection not seen before
    for i, (_, answered) in enumerate(server.seen):
        if not answered:
            resent_on, resent_answered = server.seen[i + 1]
            assert resent_answered
            assert resent_on not in [p for p, _ in server.seen[:i]]


async def test_a_request_dropped_on_a_fresh_connection_demotes_the_endpoint() -> None:
    """Dropped on the kept-alive connection, then again on the fresh one it was sent on:
    the endpoint is unreachable, as before, and the call fails once the pool has none."""
    async with RpcServer(drop=lambda n: n >= 2, chain_id=CHAIN) as server:
        pool, _ = _pool(server.url)
        await pool.start()  # two answered on the first connection
        server.drop = lambda n: True  # from now on every request is dropped
        with pytest.raises(RpcUnavailable, match="answered eth_blockNumber"):
            await asyncio.wait_for(pool.request("eth_blockNumber", [], _head), 10)
        await pool.close()
    assert pool.endpoints[0].reason == "unreachable"
    assert len(server.dropped) == 2  # the request and its one resend, nothing more


async def test_a_timeout_on_a_kept_alive_connection_is_not_sent_again() -> None:
    async with RpcServer(stall=lambda n: n >= 2, chain_id=CHAIN) as server:
        pool, _ = _pool(server.url, timeout=0.3)
        await pool.start()
        with pytest.raises(RpcUnavailable):
            await asyncio.wait_for(pool.request("eth_blockNumber", [], _head), 10)
        await pool.close()
    assert pool.endpoints[0].reason == "unreachable"
    assert (len(server.answered), len(server.dropped), server.connections) == (2, 1, 1)
