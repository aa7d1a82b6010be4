"""The node's async RPC clients (oracle.chain.rpc) never take web3's process-wide session
lock, so a cancelled request cannot wedge every RPC of the process (web3.py issue 3867:
the lock, acquired in an executor thread for a caller already cancelled, is never
released)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from web3._utils.http_session_manager import HTTPSessionManager

from oracle.chain.anvil import Anvil
from oracle.chain.rpc import async_web3

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
