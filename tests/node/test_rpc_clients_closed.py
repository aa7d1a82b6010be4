"""A node's services close their RPC clients' connections when they stop: nothing is
left open for the process's exit (or, in a process running several nodes, for the
garbage collector) to drop."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from oracle.api.stream import ReportStream
from oracle.node.chain_view import ChainView
from oracle.node.landed import LandedReportService
from oracle.node.loop_view import LoopSource, LoopView
from tests.harness.rpc_server import RpcServer

ORACLE = "0x" + "11" * 20


async def _until_asked(server: RpcServer) -> None:
    for _ in range(500):
        if server.seen:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the service asked the RPC nothing")


async def test_the_report_stream_follower_closes_its_connections_at_stop() -> None:
    async with RpcServer() as server:
        stream = ReportStream(CollectorRegistry(), lambda _: None)
        follower = LandedReportService(server.url, ORACLE, stream, poll_s=0.05, rpc_timeout_s=5)
        await follower.start()
        await _until_asked(server)
        await follower.stop()
        await server.wait_all_closed()


async def test_the_chain_view_closes_its_connections_at_stop() -> None:
    async with RpcServer() as server:
        view = ChainView(server.url, ORACLE, lambda: [], lambda: None, rpc_timeout_s=5)
        await view.read()  # this server is no chain: the read says so, and connected
        assert server.seen
        await view.close()
        await server.wait_all_closed()


async def test_the_loop_view_closes_the_clients_it_no_longer_needs_and_the_rest_at_stop() -> None:
    """A loop no longer run (a registered model deactivated) takes its chain's client with
    it; the clients left are closed when the view closes."""
    async with RpcServer() as gone, RpcServer() as kept:
        sources = [
            LoopSource("A", ("x", "y"), gone.url, "0x" + "22" * 20, None, 0),
            LoopSource("B", ("x", "y"), kept.url, "0x" + "33" * 20, None, 0),
        ]
        view = LoopView(lambda: list(sources), rpc_timeout_s=5, min_interval_s=0.0)
        await view.read()  # the first read: awaited (these servers are no chains)
        assert gone.seen and kept.seen
        del sources[0]
        await view.read()  # a later one: served from before, read again in the background
        await gone.wait_all_closed()
        assert kept.open_connections == 1
        await view.close()
        await kept.wait_all_closed()
