"""The service as the node runs it (start → loop → stop), and a nonce taken from outside."""

from __future__ import annotations

import asyncio

import pytest
from eth_account import Account
from sqlalchemy import Engine

from oracle.transmission import State
from oracle.transmission.states import AttemptState
from tests.transmission.helpers import Chain, drive, make_manager, mine


@pytest.mark.anvil
async def test_running_service_confirms_and_stops_cleanly(
    sqlite_engine: Engine, chain: Chain
) -> None:
    manager = make_manager(sqlite_engine, chain, confirmation_depth=1, poll_interval=0.05)
    assert manager.health().status == "failed"  # not started
    await manager.start()
    try:
        tid = manager.enqueue(chain.probe.address, chain.record_call(b"\x01" * 32), key=b"svc")
        for _ in range(200):  # bounded: at most ~10 s
            if manager.fate(tid).state is State.CONFIRMED:
                break
            await asyncio.sleep(0.05)
        assert manager.fate(tid).state is State.CONFIRMED
        assert manager.health().status == "ok", manager.health()
    finally:
        await manager.stop()
    assert manager.health().status == "failed"


@pytest.mark.anvil
async def test_nonce_taken_from_outside_requeues_the_call_with_a_new_nonce(
    sqlite_engine: Engine, manual_chain: Chain
) -> None:
    chain = manual_chain
    manager = make_manager(sqlite_engine, chain, confirmation_depth=1, bump_after_blocks=50)
    await manager.start(run_loop=False)
    try:
        tid = manager.enqueue(chain.probe.address, chain.record_call(b"\x02" * 32), key=b"o")
        await manager.tick()
        [ours] = manager.ctx.store.attempts(tid)
        assert manager.fate(tid).state is State.SENT and ours.nonce == 0
        # the operator uses the same key by hand: a pricier transfer replaces ours in the pool
        account = Account.from_key(chain.key)
        outside = account.sign_transaction({
            "type": 2, "chainId": 31337, "nonce": 0, "to": account.address, "value": 1,
            "data": b"", "gas": 21_000, "maxFeePerGas": ours.max_fee_per_gas * 2,
            "maxPriorityFeePerGas": ours.max_priority_fee_per_gas * 2,
        })  # fmt: skip
        chain.w3.eth.send_raw_transaction(outside.raw_transaction)
        mine(chain.w3)
        assert chain.chain_nonce() == 1

        await drive(manager, chain, [tid])
        fate = manager.fate(tid)
        assert fate.nonce == 1 and fate.tx_hash != ours.tx_hash
        states = [a.state for a in manager.ctx.store.attempts(tid)]
        assert states == [AttemptState.REPLACED, AttemptState.BROADCAST]
        assert chain.probe.functions.count().call() == 1 and chain.chain_nonce() == 2
    finally:
        await manager.stop()
