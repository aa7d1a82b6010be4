"""The node's RPC clients (oracle.chain.rpc): the async one never takes web3's
process-wide session lock, so a cancelled request cannot wedge every RPC of the process
(web3.py issue 3867: the lock, acquired in an executor thread for a caller already
cancelled, is never released); both ask the chain id once and keep their connections
alive, and a request that went out on a kept-alive connection the server had closed is
sent once more on a fresh one, and nothing else is; closing one closes its connections."""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import pytest
from web3._utils.http_session_manager import HTTPSessionManager

from oracle.chain.anvil import Anvil
from oracle.chain.rpc import async_web3, close_async_web3, sync_web3
from oracle.devnet.processes import free_port
from tests.harness.rpc_server import RpcServer


def _hold_web3_lock() -> threading.Event:
    """Take web3's shared session lock in another thread until the returned event is set."""
    release, taken = threading.Event(), threading.Event()

    def hold() -> None:
        with HTTPSessionManager._lock:
            taken.set()
            release.wait(30)

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(5)
    return release


@pytest.mark.anvil
async def test_requests_go_through_while_web3s_lock_is_held(anvil: Anvil) -> None:
    """Held here by another thread, as a leaked lock would be held forever: web3's own
    provider would wait on it (not shown: its cancelled wait would leak the lock for the
    rest of this test process); the node's clients do not take it."""
    release = _hold_web3_lock()
    try:
        ours = async_web3(anvil.url, timeout_s=5)
        assert await asyncio.wait_for(ours.eth.chain_id, 10) == 31337
        assert await asyncio.wait_for(ours.eth.block_number, 10) >= 0
        await ours.provider.disconnect()
    finally:
        release.set()


@pytest.mark.anvil
async def test_cancelled_requests_leave_the_client_working(anvil: Anvil) -> None:
    w3 = async_web3(anvil.url, timeout_s=5)
    for _ in range(20):  # cancelled at every stage of a request
        task = asyncio.create_task(w3.eth.block_number)
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not HTTPSessionManager._lock.locked()
    assert await asyncio.wait_for(w3.eth.chain_id, 10) == 31337
    await w3.provider.disconnect()


def _methods_after(anvil: Anvil, start: int, want: str, count: int) -> list[str]:
    """The methods anvil logged after the first ``start``, once ``count`` of ``want`` are in
    (its log reaches us through a pipe a moment after the answer)."""
    for _ in range(100):
        methods = anvil.rpc_methods()[start:]
        if methods.count(want) >= count:
            return methods
        time.sleep(0.05)
    raise AssertionError(f"anvil logged {anvil.rpc_methods()[start:]}")


@pytest.mark.anvil
async def test_the_async_client_asks_the_chain_id_once_not_before_every_call(
    anvil: Anvil,
) -> None:
    # web3's validation middleware reads the chain id before each eth_call and
    # eth_estimateGas: half of a node's RPC requests, before
    start = len(anvil.rpc_methods())
    w3 = async_web3(anvil.url, timeout_s=5)
    for _ in range(20):
        await w3.eth.call({"to": "0x" + "11" * 20, "data": "0x"})
    assert await w3.eth.chain_id == 31337
    await w3.provider.disconnect()
    methods = _methods_after(anvil, start, "eth_call", 20)
    assert methods.count("eth_call") == 20
    assert methods.count("eth_chainId") <= 2, methods  # web3 asks twice as it fills its cache


@pytest.mark.anvil
def test_the_blocking_client_asks_the_chain_id_once_too(anvil: Anvil) -> None:
    start = len(anvil.rpc_methods())
    w3 = sync_web3(anvil.url, timeout_s=5)
    for _ in range(20):
        w3.eth.call({"to": "0x" + "11" * 20, "data": "0x"})
    methods = _methods_after(anvil, start, "eth_call", 20)
    assert methods.count("eth_chainId") <= 2, methods


# -- connections kept alive ------------------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.mark.anvil
async def test_sequential_calls_to_anvil_reuse_one_connection(anvil: Anvil) -> None:
    """Counted by a TCP proxy in front of anvil: web3's own session opened a connection (a
    TLS handshake on an https provider, a socket in TIME_WAIT for a minute) per request."""
    assert anvil.port is not None
    forwarding: list[asyncio.Task[None] | None] = []  # a task per connection accepted

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        forwarding.append(asyncio.current_task())
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", anvil.port)
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    proxy = await asyncio.start_server(forward, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    w3 = async_web3(f"http://127.0.0.1:{port}", timeout_s=5)
    try:
        for _ in range(10):
            assert await asyncio.wait_for(w3.eth.block_number, 10) >= 0
            await asyncio.wait_for(w3.eth.call({"to": "0x" + "11" * 20, "data": "0x"}), 10)
    finally:
        await w3.provider.disconnect()
        proxy.close()
        await asyncio.wait_for(asyncio.gather(*forwarding), 10)  # the client closed them
    assert 1 <= len(forwarding) <= 2, len(forwarding)


async def test_sequential_calls_reuse_one_connection() -> None:
    async with RpcServer() as server:
        w3 = async_web3(server.url, timeout_s=5)
        for n in range(1, 21):
            assert await asyncio.wait_for(w3.eth.block_number, 10) == n
        await w3.provider.disconnect()
    assert len(server.answered) == 20
    assert server.connections == 1, server.answered


async def test_the_blocking_client_reuses_its_connection_too() -> None:
    async with RpcServer() as server:
        w3 = sync_web3(server.url, timeout_s=5)
        # one thread: web3 keeps a requests session per thread
        numbers = await asyncio.to_thread(lambda: [w3.eth.block_number for _ in range(20)])
    assert numbers == list(range(1, 21))
    assert server.connections == 1, server.answered


async def test_a_request_on_a_connection_the_server_closed_is_sent_again_on_a_fresh_one() -> None:
    """The server answers two requests a connection and drops the third unanswered. Four
    concurrent calls leave four pooled connections that age alike: a resend through the
    pool would go out on another one the server closes too; it goes on a new one."""
    async with RpcServer(drop=lambda n: n >= 2) as server:
        w3 = async_web3(server.url, timeout_s=5)
        calls = [w3.eth.block_number for _ in range(4)]
        await asyncio.wait_for(asyncio.gather(*calls), 10)
        for _ in range(20):
            await asyncio.wait_for(w3.eth.block_number, 10)
        await w3.provider.disconnect()
    assert server.dropped, "the server closed no connection the client reused"
    # every call answered once, and the server saw besides only the requests it dropped,
    # each sent again at once on a connection of its own
    assert len(server.answered) == 24
    sequential = server.seen[4:]
    for i, (_, answered) in enumerate(sequential):
        if not answered:
            resent_on, resent_answered = sequential[i + 1]
            assert resent_answered
            assert resent_on not in [p for p, _ in server.seen[: 4 + i]]


async def test_connections_the_server_closed_when_idle_are_not_reused() -> None:
    async with RpcServer(idle_s=0.1) as server:
        w3 = async_web3(server.url, timeout_s=5)
        for _ in range(3):
            await asyncio.wait_for(w3.eth.block_number, 10)
            await asyncio.sleep(0.3)
        await w3.provider.disconnect()
    assert (len(server.answered), server.dropped, server.connections) == (3, [], 3)


async def test_a_request_dropped_on_a_fresh_connection_is_not_sent_again() -> None:
    """The first request of a connection answered, any other dropped: the second call goes
    out on the kept-alive connection, is dropped, is sent again on a fresh connection, is
    dropped again and fails; the third, on a fresh connection, fails at once."""
    async with RpcServer(drop=lambda n: n >= 1 or (n == 0 and server.answered != [])) as server:
        w3 = async_web3(server.url, timeout_s=5)
        await asyncio.wait_for(w3.eth.block_number, 10)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await asyncio.wait_for(w3.eth.block_number, 10)
        assert len(server.dropped) == 2
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await asyncio.wait_for(w3.eth.block_number, 10)
        await w3.provider.disconnect()
    assert (len(server.answered), len(server.dropped)) == (1, 3)


async def test_a_timeout_on_a_kept_alive_connection_is_not_sent_again() -> None:
    async with RpcServer(stall=lambda n: n >= 1) as server:
        w3 = async_web3(server.url, timeout_s=0.3)
        await asyncio.wait_for(w3.eth.block_number, 10)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(w3.eth.block_number, 10)
        await w3.provider.disconnect()
    assert (len(server.answered), len(server.dropped), server.connections) == (1, 1, 1)


async def test_a_server_down_fails_the_call_once() -> None:
    w3 = async_web3(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    started = time.monotonic()
    with pytest.raises(aiohttp.ClientConnectorError):
        await asyncio.wait_for(w3.eth.block_number, 10)
    assert time.monotonic() - started < 2
    await w3.provider.disconnect()


async def test_an_http_error_fails_the_call_and_is_not_sent_again() -> None:
    async with RpcServer(status=500) as server:
        w3 = async_web3(server.url, timeout_s=5)
        for _ in range(2):  # on a new connection, then on the kept-alive one
            with pytest.raises(aiohttp.ClientResponseError) as failed:
                await asyncio.wait_for(w3.eth.block_number, 10)
            assert failed.value.status == 500
        await w3.provider.disconnect()
    assert len(server.answered) == 2
    assert server.connections == 1


async def test_closing_an_async_client_closes_its_connections_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What every owner of an async client does when it stops: its kept-alive connections
    are closed (none left for the process's exit to drop), without web3's INFO line per
    client; a later call opens a new one, and closing twice is harmless."""
    async with RpcServer() as server:
        w3 = async_web3(server.url, timeout_s=5)
        await asyncio.wait_for(w3.eth.block_number, 10)
        assert server.open_connections == 1
        await close_async_web3(w3)
        await server.wait_all_closed()
        assert await asyncio.wait_for(w3.eth.block_number, 10) == 2
        assert server.open_connections == 1
        await close_async_web3(w3)
        await close_async_web3(w3)
        await server.wait_all_closed()
    assert server.connections == 2
    assert not [r for r in caplog.records if "disconnected" in r.getMessage()]
