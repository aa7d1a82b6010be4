"""Callbacks delivered, derived from the oracle's logs (oracle.node.callbacks), on a real
anvil with a real MiraOracle and a FROST committee: a report calls a consumer only for the
feeds it is subscribed to at that point of the chain; a failure or a skip is not a delivery;
the derived count is the consumer's own count of its calls, however the scan is cut."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract

from oracle import artifacts
from oracle.bench.gas import Committee, start_committee
from oracle.chain.anvil import Anvil
from oracle.chain.deploy import deploy
from oracle.chain.rpc import async_web3
from oracle.node import callbacks
from oracle.node.callbacks import CallbackLedger
from oracle.reporting.report import FeedUpdate, Report, digest, encode

pytestmark = [pytest.mark.anvil]
A, B = b"\x11" * 32, b"\x22" * 32


class Chain:
    def __init__(self, w3: Web3, oracle: Contract, committee: Committee) -> None:
        self.w3, self.oracle, self.committee = w3, oracle, committee
        self.round = 0
        self.base_price = 2 * int(w3.eth.get_block("latest")["baseFeePerGas"])

    def send(self, call: Any, value: int = 0, gas_price: int | None = None) -> None:
        price = gas_price or 20 * self.base_price  # reports: 20 times what "poor" paid for
        tx = call.transact({"value": value, "gas": 3_000_000, "gasPrice": price})
        assert self.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1

    def report(self, *feeds: bytes) -> None:
        """One report updating ``feeds`` (each value new), transmitted directly."""
        self.round += 1
        # its own second, so every update is newer than the feed's last (no extra block)
        now = int(self.w3.eth.get_block("latest")["timestamp"]) + 1
        self.w3.provider.make_request("evm_setNextBlockTimestamp", [now])  # type: ignore[arg-type]
        updates = tuple(FeedUpdate(f, 1000 + self.round, now, b"\x33" * 32) for f in feeds)
        payload = encode(Report(self.committee.epoch, self.round, updates))
        sig = self.committee.sign(
            digest(self.w3.eth.chain_id, self.oracle.address, self.committee.epoch, payload)
        )
        self.send(self.oracle.functions.transmit(payload, tuple(sig)))


@pytest.fixture
def chain(anvil: Anvil, w3: Web3) -> Chain:
    oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    committee = start_committee(w3, oracle, 4)
    for f in (A, B):
        w3.eth.wait_for_transaction_receipt(oracle.functions.registerFeed(f, 8, "T").transact())
    return Chain(w3, oracle, committee)


def ledger(anvil: Anvil, oracle: str) -> CallbackLedger:
    w3 = async_web3(anvil.url, timeout_s=10)
    abi = artifacts.load("MiraOracle").abi
    return CallbackLedger(w3, w3.eth.contract(address=Web3.to_checksum_address(oracle), abi=abi))


async def catch_up(led: CallbackLedger, w3: Web3, consumers: Sequence[str]) -> None:
    tip = int(w3.eth.block_number)
    for _ in range(100):
        await led.advance(tip, consumers)
        if led.scanned >= tip:
            return
    raise AssertionError("the ledger did not catch up")


async def test_delivered_is_derived_per_report_while_subscribed(
    anvil: Anvil, w3: Web3, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    oracle = chain.oracle
    fns = oracle.functions
    recorder = deploy(w3, "RecordingConsumer", oracle.address)
    reverting = deploy(w3, "RevertingConsumer")
    poor = deploy(w3, "RecordingConsumer", oracle.address)
    chain.send(fns.subscribe(recorder.address, [A], 300_000), 10**18)
    chain.send(fns.subscribe(reverting.address, [A, B], 100_000), 10**18)
    # the least deposit at a low gas price: every callback at the reports' price is skipped
    low = chain.base_price
    least = int(fns.callbackCost(300_000, low).call())
    chain.send(fns.subscribe(poor.address, [B], 300_000), least, gas_price=low)
    chain.report(A)  # recorder delivered, reverting failed
    chain.report(B)  # recorder not called; reverting failed; poor skipped
    chain.report(A, B)  # recorder delivered once; reverting failed once; poor skipped
    # the recorder moves from A to B: a report of A no longer calls it, one of B does
    chain.send(fns.unsubscribe(recorder.address, [A]))
    chain.send(fns.subscribe(recorder.address, [B], 300_000))
    chain.report(A)
    chain.report(B)
    consumers = [recorder.address, reverting.address, poor.address]
    expected = {
        recorder.address: {"delivered": 3, "failed": 0, "skipped": 0, "unexplained": 0},
        reverting.address: {"delivered": 0, "failed": 5, "skipped": 0, "unexplained": 0},
        poor.address: {"delivered": 0, "failed": 0, "skipped": 3, "unexplained": 0},
    }
    assert int(recorder.functions.calls().call()) == 3

    whole = ledger(anvil, oracle.address)
    await catch_up(whole, w3, consumers)
    assert {c: whole.counts(c) for c in consumers} == expected
    assert whole.scan_from == 0 and whole.unreadable_reports == 0

    # a scan cut into pieces (one report read back per call) comes to the same counts
    monkeypatch.setattr(callbacks, "MAX_REPORTS", 1)
    cut = ledger(anvil, oracle.address)
    await catch_up(cut, w3, consumers)
    assert {c: cut.counts(c) for c in consumers} == expected

    # a scan that starts late (a node started long after): the consumers' feeds are read
    # as they were at the block before it, so the last five blocks — report(A, B),
    # unsubscribe, subscribe, report(A), report(B) — count as they did in the whole scan
    monkeypatch.setattr(callbacks, "LOG_SPAN", 4)
    late = ledger(anvil, oracle.address)
    await catch_up(late, w3, consumers)
    assert late.scan_from == int(w3.eth.block_number) - 4
    assert {c: late.counts(c) for c in consumers} == {
        recorder.address: {"delivered": 2, "failed": 0, "skipped": 0, "unexplained": 0},
        reverting.address: {"delivered": 0, "failed": 3, "skipped": 0, "unexplained": 0},
        poor.address: {"delivered": 0, "failed": 0, "skipped": 2, "unexplained": 0},
    }


async def test_consumers_followed_are_bounded(
    anvil: Anvil, w3: Web3, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callbacks, "MAX_CONSUMERS", 2)
    made = [deploy(w3, "RecordingConsumer", chain.oracle.address) for _ in range(3)]
    for c in made:
        chain.send(chain.oracle.functions.subscribe(c.address, [A], 300_000), 10**17)
    chain.report(A)
    led = ledger(anvil, chain.oracle.address)
    await catch_up(led, w3, [c.address for c in made])
    assert len(led.consumers) == 2
    assert led.counts(made[2].address)["delivered"] is None  # not followed: not known
    assert [led.counts(c.address)["delivered"] for c in made[:2]] == [1, 1]
