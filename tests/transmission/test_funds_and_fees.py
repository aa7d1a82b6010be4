"""Low balance raises one alert and holds the queue instead of failing on every tick;
on OP Stack chains the L1 data fee from the GasPriceOracle predeploy is part of the cost."""

from __future__ import annotations

import pytest
import structlog
from eth_account import Account
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from oracle import artifacts
from oracle.transmission import State
from oracle.transmission.client import GAS_PRICE_ORACLE
from tests.transmission.helpers import Chain, drive, make_manager, mine, rpc


@pytest.mark.anvil
async def test_insufficient_funds_alerts_once_and_sends_nothing_until_funded(
    sqlite_engine: Engine, chain: Chain
) -> None:
    poor = Account.create()
    rpc(chain.w3, "anvil_setBalance", [poor.address, hex(10**12)])  # far below one tx's gas
    registry = CollectorRegistry()
    manager = make_manager(sqlite_engine, chain, key=poor.key.hex(), registry=registry)
    labels = {"chain_id": "31337", "sender": poor.address}
    await manager.start(run_loop=False)
    try:
        ids = [
            manager.enqueue(chain.probe.address, chain.record_call(bytes([i]) * 32), key=bytes([i]))
            for i in (1, 2, 3)
        ]
        with structlog.testing.capture_logs() as logs:
            for _ in range(5):
                await manager.tick()  # never raises
                mine(chain.w3)
        states = [manager.fate(i).state for i in ids]
        assert states == [State.SIMULATED, State.QUEUED, State.QUEUED]
        assert all(manager.ctx.store.attempts(i) == [] for i in ids)
        assert manager.ctx.store.next_nonce() == 0  # no nonce taken for a doomed transaction
        assert chain.w3.eth.get_transaction_count(poor.address, "pending") == 0
        health = manager.health()
        assert health.status == "degraded"
        assert (
            "insufficient funds" in health.detail and "below the alert threshold" in health.detail
        )
        assert registry.get_sample_value("mira_tx_low_balance", labels) == 1
        assert registry.get_sample_value("mira_tx_balance_wei", labels) == 10**12
        problems = [e for e in logs if e["event"] == "transmission_problem"]
        assert sorted(e["part"] for e in problems) == ["balance", "funds"]  # once each
        assert [e["event"] for e in logs].count("balance_low") == 1

        rpc(chain.w3, "anvil_setBalance", [poor.address, hex(10**19)])
        await drive(manager, chain, ids)
        assert manager.health().status == "ok", manager.health()
        assert registry.get_sample_value("mira_tx_low_balance", labels) == 0
        assert chain.probe.functions.count().call() == 3
    finally:
        await manager.stop()


@pytest.mark.anvil
async def test_l1_data_fee_from_the_gas_price_oracle_is_part_of_the_cost(
    sqlite_engine: Engine, chain: Chain
) -> None:
    stub = artifacts.load("GasPriceOracleStub")
    rpc(chain.w3, "anvil_setCode", [GAS_PRICE_ORACLE, "0x" + stub.deployed_bytecode.hex()])
    base_fee = 7_000_000_000_000  # GasPriceOracleStub.BASE_FEE
    per_byte = 1_000_000_000  # GasPriceOracleStub.FEE_PER_BYTE
    registry = CollectorRegistry()
    manager = make_manager(sqlite_engine, chain, registry=registry)
    await manager.start(run_loop=False)
    try:
        assert manager.ctx.op_stack
        tid = manager.enqueue(chain.probe.address, chain.record_call(b"\x09" * 32), key=b"l1")
        await drive(manager, chain, [tid])
        [attempt] = manager.ctx.store.attempts(tid)
        expected = base_fee + per_byte * len(attempt.raw_tx)  # the signed tx was passed in
        fate = manager.fate(tid)
        assert attempt.l1_fee == expected and fate.l1_fee == expected
        receipt = chain.w3.eth.get_transaction_receipt(fate.tx_hash)
        assert fate.cost_wei == receipt["gasUsed"] * receipt["effectiveGasPrice"] + expected
        labels = {"chain_id": "31337", "sender": chain.sender}
        assert registry.get_sample_value("mira_tx_l1_fee_wei_total", labels) == expected
        assert registry.get_sample_value("mira_tx_gas_spent_wei_total", labels) == fate.cost_wei
    finally:
        await manager.stop()


@pytest.mark.anvil
async def test_without_the_predeploy_there_is_no_l1_fee(
    sqlite_engine: Engine, chain: Chain
) -> None:
    manager = make_manager(sqlite_engine, chain)
    await manager.start(run_loop=False)
    try:
        assert not manager.ctx.op_stack
        tid = manager.enqueue(chain.probe.address, chain.record_call(b"\x0a" * 32), key=b"l2")
        await drive(manager, chain, [tid])
        fate = manager.fate(tid)
        assert fate.l1_fee is None and fate.cost_wei == fate.gas_used * fate.effective_gas_price
    finally:
        await manager.stop()
