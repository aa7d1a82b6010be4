"""End to end on anvil: calls are simulated, sent once each in nonce order, confirmed at
depth, and a call that would revert is never sent."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from web3 import Web3

from oracle.chain.deploy import deploy
from oracle.transmission import IdempotencyConflict, State
from oracle.transmission.states import AttemptState
from tests.transmission.helpers import Chain, drive, make_manager, mine


@pytest.mark.anvil
async def test_each_call_is_delivered_once_in_nonce_order(engine: Engine, chain: Chain) -> None:
    registry = CollectorRegistry()
    manager = make_manager(engine, chain, registry=registry)
    await manager.start(run_loop=False)
    try:
        keys = [bytes([i]) * 32 for i in range(1, 4)]
        ids = [manager.enqueue(chain.probe.address, chain.record_call(k), key=k) for k in keys]
        # the same key and call: the same transmission, nothing new stored
        assert (
            manager.enqueue(chain.probe.address, chain.record_call(keys[0]), key=keys[0]) == ids[0]
        )
        with pytest.raises(IdempotencyConflict, match=keys[0].hex()):
            manager.enqueue(chain.probe.address, chain.record_call(keys[1]), key=keys[0])
        assert [manager.fate(i).state for i in ids] == [State.QUEUED] * 3

        await drive(manager, chain, ids)

        fates = [manager.fate(i) for i in ids]
        assert [f.nonce for f in fates] == [0, 1, 2]
        assert chain.chain_nonce() == 3
        assert chain.probe.functions.count().call() == 3
        for f, k in zip(fates, keys, strict=True):
            assert f.receipt_status == 1 and f.error is None
            assert chain.probe.functions.recordedAt(k).call() == f.included_block
            receipt = chain.w3.eth.get_transaction_receipt(f.tx_hash)
            assert receipt["blockHash"] == f.included_block_hash
            assert f.cost_wei == receipt["gasUsed"] * receipt["effectiveGasPrice"]
            attempts = manager.ctx.store.attempts(f.id)
            assert [a.state for a in attempts] == [AttemptState.BROADCAST]
            assert f.confirmed_at_ms is not None
        labels = {"chain_id": "31337", "sender": chain.sender}
        assert registry.get_sample_value("mira_tx_gas_spent_wei_total", labels) == sum(
            f.cost_wei or 0 for f in fates
        )
        assert registry.get_sample_value("mira_tx_confirmation_seconds_count", labels) == 3
        pending = {**labels, "state": "sent"}
        assert registry.get_sample_value("mira_tx_pending", pending) == 0
        assert manager.health().status == "ok", manager.health()
    finally:
        await manager.stop()


@pytest.mark.anvil
async def test_a_call_that_would_revert_is_not_sent_and_says_why(
    sqlite_engine: Engine, chain: Chain
) -> None:
    key = b"\x07" * 32
    # someone else delivers the same record first
    chain.probe.functions.record(key).transact({"from": chain.w3.eth.accounts[2]})
    landed = chain.probe.functions.recordedAt(key).call()
    oracle = deploy(chain.w3, "MiraOracle", chain.w3.eth.accounts[0], 3600, 86400, 3600, 60)
    bad_report = oracle.encode_abi("transmit", args=[b"\x01\x02\x03", (1, 0, oracle.address, 1)])

    manager = make_manager(sqlite_engine, chain)
    await manager.start(run_loop=False)
    try:
        replay = manager.enqueue(chain.probe.address, chain.record_call(key), key=key)
        malformed = manager.enqueue(oracle.address, Web3.to_bytes(hexstr=bad_report), key=b"r1")
        good = manager.enqueue(chain.probe.address, chain.record_call(b"\x08" * 32), key=b"g")
        await drive(manager, chain, [good])
        assert manager.fate(replay).state is State.FAILED
        assert manager.fate(replay).error == (
            f"simulation reverted: AlreadyRecorded(key=0x{key.hex()}, atBlock={landed})"
        )
        assert manager.fate(malformed).state is State.FAILED
        assert manager.fate(malformed).error == "simulation reverted: MalformedReport(length=3)"
        for tid in (replay, malformed):
            assert manager.fate(tid).nonce is None
            assert manager.ctx.store.attempts(tid) == []
        # the reverted calls took no nonce: the good one got 0, and only it was sent
        assert manager.fate(good).nonce == 0
        assert chain.chain_nonce() == 1
    finally:
        await manager.stop()
    mine(chain.w3)
