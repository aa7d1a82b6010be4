"""Stuck transactions are replaced with higher fees (within the cap), and a transaction
undone by a reorg is re-simulated, sent again and confirmed."""

from __future__ import annotations

import itertools

import pytest
import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from oracle.transmission import State
from oracle.transmission.states import AttemptState
from tests.transmission.helpers import Chain, drive, make_manager, mine, rpc

LABELS_CHAIN = "31337"


def _stick(chain: Chain, max_fee: int) -> None:
    """Mine a block whose base fee is far above ``max_fee``: the transaction stays pending."""
    rpc(chain.w3, "anvil_setNextBlockBaseFeePerGas", [hex(max_fee * 20)])
    mine(chain.w3)


@pytest.mark.anvil
async def test_stuck_transaction_is_bumped_and_included(
    sqlite_engine: Engine, manual_chain: Chain
) -> None:
    chain = manual_chain
    registry = CollectorRegistry()
    manager = make_manager(
        sqlite_engine, chain, registry=registry, bump_after_blocks=2, confirmation_depth=1
    )
    await manager.start(run_loop=False)
    try:
        tid = manager.enqueue(chain.probe.address, chain.record_call(b"\x01" * 32), key=b"stuck")
        await manager.tick()
        assert manager.fate(tid).state is State.SENT
        first = manager.ctx.store.attempts(tid)[0]
        _stick(chain, first.max_fee_per_gas)
        assert chain.w3.eth.get_transaction_count(chain.sender) == 0  # not included

        await drive(manager, chain, [tid])

        fate = manager.fate(tid)
        attempts = manager.ctx.store.attempts(tid)
        assert len(attempts) >= 2
        assert {a.nonce for a in attempts} == {0}
        for before, after in itertools.pairwise(attempts):
            # both fees rise by at least 12.5%: what nodes require of a replacement
            assert after.max_fee_per_gas * 1000 >= before.max_fee_per_gas * 1125
            assert after.max_priority_fee_per_gas * 1000 >= before.max_priority_fee_per_gas * 1125
        assert fate.tx_hash in {a.tx_hash for a in attempts[1:]}
        assert chain.chain_nonce() == 1
        assert chain.probe.functions.count().call() == 1
        labels = {"chain_id": LABELS_CHAIN, "sender": chain.sender}
        assert registry.get_sample_value("mira_tx_bumps_total", labels) == len(attempts) - 1
    finally:
        await manager.stop()


@pytest.mark.anvil
async def test_bumps_stop_at_the_fee_cap(sqlite_engine: Engine, manual_chain: Chain) -> None:
    chain = manual_chain
    manager = make_manager(sqlite_engine, chain, bump_after_blocks=1, confirmation_depth=1)
    await manager.start(run_loop=False)
    try:
        estimate = await manager.ctx.fees.estimate()
        cap = estimate.fees.max_fee_per_gas + estimate.fees.max_fee_per_gas // 20  # +5%
        tid = manager.enqueue(
            chain.probe.address,
            chain.record_call(b"\x02" * 32),
            key=b"capped",
            max_fee_per_gas_cap=cap,
        )
        await manager.tick()
        first = manager.ctx.store.attempts(tid)[0]
        _stick(chain, first.max_fee_per_gas)
        with structlog.testing.capture_logs() as logs:
            # empty blocks lower the base fee 12.5% each until the original fee fits
            await drive(manager, chain, [tid], max_ticks=60)
        attempts = manager.ctx.store.attempts(tid)
        assert all(a.max_fee_per_gas <= cap for a in attempts)
        # a +12.5% replacement does not fit under a +5% cap: nothing else was signed
        assert len(attempts) == 1 and manager.fate(tid).tx_hash == first.tx_hash
        assert [e["event"] for e in logs].count("fee_cap_reached") == 1
        assert chain.probe.functions.count().call() == 1
    finally:
        await manager.stop()


@pytest.mark.anvil
async def test_transaction_dropped_by_a_reorg_is_resent_and_confirmed(
    sqlite_engine: Engine, chain: Chain
) -> None:
    registry = CollectorRegistry()
    manager = make_manager(sqlite_engine, chain, registry=registry, confirmation_depth=3)
    await manager.start(run_loop=False)
    try:
        key = b"\x03" * 32
        tid = manager.enqueue(chain.probe.address, chain.record_call(key), key=key)
        await drive(manager, chain, [tid], lambda s: s == [State.INCLUDED], mine_blocks=False)
        before = manager.fate(tid)
        assert chain.probe.functions.recordedAt(key).call() == before.included_block

        rpc(chain.w3, "anvil_reorg", [1, []])  # the block holding it is replaced by an empty one
        assert chain.probe.functions.recordedAt(key).call() == 0
        assert chain.chain_nonce() == 0

        await manager.tick()
        assert manager.fate(tid).state is State.DROPPED
        await drive(manager, chain, [tid])

        after = manager.fate(tid)
        # the same signed bytes went out again: one attempt, the same hash, the same nonce
        assert after.tx_hash == before.tx_hash and after.nonce == 0
        assert after.included_block_hash != before.included_block_hash
        assert [a.state for a in manager.ctx.store.attempts(tid)] == [AttemptState.BROADCAST]
        assert chain.probe.functions.recordedAt(key).call() == after.included_block
        assert chain.chain_nonce() == 1
        labels = {"chain_id": LABELS_CHAIN, "sender": chain.sender}
        assert registry.get_sample_value("mira_tx_reorged_total", labels) == 1
    finally:
        await manager.stop()


@pytest.mark.anvil
async def test_reorged_call_that_now_reverts_is_cancelled_to_fill_its_nonce(
    sqlite_engine: Engine, chain: Chain
) -> None:
    manager = make_manager(sqlite_engine, chain, confirmation_depth=3)
    await manager.start(run_loop=False)
    try:
        key = b"\x04" * 32
        tid = manager.enqueue(chain.probe.address, chain.record_call(key), key=key)
        later = manager.enqueue(chain.probe.address, chain.record_call(b"\x05" * 32), key=b"l")
        await drive(
            manager, chain, [tid, later], lambda s: s == [State.INCLUDED] * 2, mine_blocks=False
        )
        rpc(chain.w3, "anvil_reorg", [2, []])
        # meanwhile someone else records the same key: re-sending would now revert
        chain.probe.functions.record(key).transact({"from": chain.w3.eth.accounts[3]})
        await drive(manager, chain, [tid, later], lambda s: s == [State.FAILED, State.CONFIRMED])
        fate = manager.fate(tid)
        assert fate.error is not None and fate.error.startswith(
            "re-simulation after a reorg reverted: AlreadyRecorded("
        )
        assert fate.cancelling and fate.nonce == 0
        assert manager.fate(later).nonce == 1
        assert chain.chain_nonce() == 2  # nonce 0 filled by the cancel, 1 by the later call
        tx = chain.w3.eth.get_transaction(fate.tx_hash)
        assert tx["to"] == chain.sender and tx["value"] == 0
    finally:
        await manager.stop()
