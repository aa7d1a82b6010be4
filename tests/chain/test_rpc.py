"""The node's async RPC clients (oracle.chain.rpc) never take web3's process-wide session
lock, so a cancelled request cannot wedge every RPC of the process (web3.py issue 3867:
the lock, acquired in an executor thread for a caller already cancelled, is never
released)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from web3._utils.http_session_manager import HTTPSessionManager

from oracle.chain.anvil import Anvil
from oracle.chain.rpc import async_web3, sync_web3

pytestmark = pytest.mark.anvil


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


def test_the_blocking_client_asks_the_chain_id_once_too(anvil: Anvil) -> None:
    start = len(anvil.rpc_methods())
    w3 = sync_web3(anvil.url, timeout_s=5)
    for _ in range(20):
        w3.eth.call({"to": "0x" + "11" * 20, "data": "0x"})
    methods = _methods_after(anvil, start, "eth_call", 20)
    assert methods.count("eth_chainId") <= 2, methods
