"""Several RPC endpoints: a dead one is skipped, and one that answers garbage, serves
another chain, hands out another transaction's receipt or quotes absurd fees is demoted,
while every call is still delivered exactly once through the honest endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from oracle.transmission import RpcError
from tests.transmission.helpers import Chain, FakeRpc, dead_url, drive, make_manager, mine


def _labels(chain: Chain, **extra: str) -> dict[str, str]:
    return {"chain_id": "31337", "sender": chain.sender, **extra}


@pytest.mark.anvil
async def test_dead_first_rpc_is_demoted_and_the_live_one_serves(
    sqlite_engine: Engine, chain: Chain
) -> None:
    dead = dead_url()
    registry = CollectorRegistry()
    manager = make_manager(sqlite_engine, chain, [dead, chain.anvil.url], registry=registry)
    await manager.start(run_loop=False)
    try:
        ids = [
            manager.enqueue(chain.probe.address, chain.record_call(bytes([i]) * 32), key=bytes([i]))
            for i in (1, 2)
        ]
        await drive(manager, chain, ids)
        assert chain.probe.functions.count().call() == 2 and chain.chain_nonce() == 2
        first = manager.pool.endpoints[0]
        assert first.reason == "unreachable"
        health = manager.health()
        assert health.status == "degraded" and "unreachable" in health.detail
        assert (
            registry.get_sample_value(
                "mira_tx_rpc_demotions_total", _labels(chain, reason="unreachable")
            )
            == 1
        )
    finally:
        await manager.stop()


@pytest.mark.anvil
async def test_rpc_that_dies_mid_run_fails_over(sqlite_engine: Engine, chain: Chain) -> None:
    proxy = await FakeRpc(chain.anvil.url).start()
    registry = CollectorRegistry()
    manager = make_manager(sqlite_engine, chain, [proxy.url, chain.anvil.url], registry=registry)
    await manager.start(run_loop=False)
    try:
        first = manager.enqueue(chain.probe.address, chain.record_call(b"\x01" * 32), key=b"a")
        await drive(manager, chain, [first])
        assert "eth_sendRawTransaction" in proxy.calls  # the preferred endpoint served it
        await proxy.stop()
        second = manager.enqueue(chain.probe.address, chain.record_call(b"\x02" * 32), key=b"b")
        await drive(manager, chain, [second])
        assert manager.pool.endpoints[0].reason == "unreachable"
        assert registry.get_sample_value("mira_tx_rpc_failovers_total", _labels(chain)) == 1
        assert chain.chain_nonce() == 2 and chain.probe.functions.count().call() == 2
    finally:
        await manager.stop()
        await proxy.stop()


@pytest.mark.anvil
async def test_no_usable_rpc_refuses_to_start(sqlite_engine: Engine, chain: Chain) -> None:
    manager = make_manager(sqlite_engine, chain, [dead_url()])
    with pytest.raises(RpcError, match="unreachable"):
        await manager.start(run_loop=False)


def _truncated(_call: dict[str, Any], _answer: dict[str, Any]) -> bytes:
    return b'{"jsonrpc": "2.0", "id": 1, "result": {"blockHash": "0x'


def _wrong_chain(call: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    return {**answer, "result": hex(10)}


def _absurd_fees(_call: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    result = dict(answer["result"])
    result["baseFeePerGas"] = ["0xffffffffffffffffffff"] * len(result["baseFeePerGas"])
    return {**answer, "result": result}


CASES = {
    # method corrupted -> the reason the endpoint must be demoted for
    "malformed-json": ("eth_getTransactionReceipt", "malformed-json"),
    "wrong-chain-id": ("eth_chainId", "wrong-chain-id"),
    "wrong-receipt": ("eth_getTransactionReceipt", "wrong-receipt"),
    "absurd-fee": ("eth_feeHistory", "absurd-fee"),
}


@pytest.mark.anvil
@pytest.mark.parametrize("case", sorted(CASES))
async def test_bad_rpc_answers_demote_the_endpoint_and_nothing_is_sent_twice(
    sqlite_engine: Engine, chain: Chain, case: str
) -> None:
    method, reason = CASES[case]
    proxy = await FakeRpc(chain.anvil.url).start()
    deploy_tx = chain.w3.eth.get_block(1)["transactions"][0]
    other_receipt = chain.w3.provider.make_request(  # type: ignore[arg-type]
        "eth_getTransactionReceipt", ["0x" + bytes(deploy_tx).hex()]
    )["result"]

    def wrong_receipt(call: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        return {**answer, "result": other_receipt}  # a real receipt, of another transaction

    hooks = {
        "malformed-json": _truncated,
        "wrong-chain-id": _wrong_chain,
        "wrong-receipt": wrong_receipt,
        "absurd-fee": _absurd_fees,
    }
    proxy.corrupt[method] = hooks[case]
    registry = CollectorRegistry()
    manager = make_manager(sqlite_engine, chain, [proxy.url, chain.anvil.url], registry=registry)
    try:
        with structlog.testing.capture_logs() as logs:
            await manager.start(run_loop=False)
            ids = [
                manager.enqueue(
                    chain.probe.address, chain.record_call(bytes([i]) * 32), key=bytes([i])
                )
                for i in (1, 2, 3)
            ]
            await drive(manager, chain, ids)
        bad = manager.pool.endpoints[0]
        assert bad.reason == reason, (bad.reason, bad.detail)
        demotions = [e for e in logs if e["event"] == "rpc_demoted"]
        assert [e["reason"] for e in demotions] == [reason]  # logged once, not per request
        assert (
            registry.get_sample_value("mira_tx_rpc_demotions_total", _labels(chain, reason=reason))
            == 1
        )
        assert manager.health().status == "degraded"
        # every call exactly once: three records, three nonces used, one attempt each
        assert chain.probe.functions.count().call() == 3
        assert chain.chain_nonce() == 3
        assert [len(manager.ctx.store.attempts(i)) for i in ids] == [1, 1, 1]
        fates = [manager.fate(i) for i in ids]
        for f in fates:
            assert f.tx_hash is not None
            assert (
                chain.w3.eth.get_transaction_receipt(f.tx_hash)["blockHash"]
                == f.included_block_hash
            )
    finally:
        await manager.stop()
        await proxy.stop()


def _shift_head(delta: int) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    def hook(_call: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        return {**answer, "result": hex(max(0, int(answer["result"], 16) + delta))}

    return hook


@pytest.mark.anvil
async def test_lagging_and_far_ahead_endpoints_are_demoted_not_the_majority(
    sqlite_engine: Engine, chain: Chain
) -> None:
    mine(chain.w3, 30)  # enough history for a 25-block lag to exist
    lagging = await FakeRpc(chain.anvil.url, corrupt={"eth_blockNumber": _shift_head(-25)}).start()
    ahead = await FakeRpc(chain.anvil.url, corrupt={"eth_blockNumber": _shift_head(+500)}).start()
    urls = [ahead.url, lagging.url, chain.anvil.url]
    manager = make_manager(sqlite_engine, chain, urls)
    await manager.start(run_loop=False)
    try:
        reasons = [e.reason for e in manager.pool.endpoints]
        assert reasons == ["ahead", "lagging", None]
        sent = manager.enqueue(chain.probe.address, chain.record_call(b"\x09" * 32), key=b"lag")
        await drive(manager, chain, [sent])
        assert "eth_sendRawTransaction" not in ahead.calls + lagging.calls
        assert chain.probe.functions.count().call() == 1 and chain.chain_nonce() == 1
    finally:
        await manager.stop()
        await lagging.stop()
        await ahead.stop()
