"""Reports through the transaction manager: ManagedTransmitter on a real anvil with a real
MiraOracle and a FROST committee; the manager's fates mapped onto the protocol's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import pytest
import pytest_asyncio
from eth_account import Account
from eth_utils import keccak
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from oracle import artifacts
from oracle.bench.gas import start_committee
from oracle.chain.anvil import Anvil
from oracle.chain.deploy import deploy
from oracle.chain.oracle_calls import SignatureStruct
from oracle.reporting.report import FeedUpdate, Report, digest, encode
from oracle.reporting.store import report_hash
from oracle.reporting.transmit import Fate, ManagedTransmitter, fate_of
from oracle.transmission import State, Transmission, TransmissionManager, TxManagerConfig

pytestmark = [pytest.mark.anvil]
FEED = b"\x11" * 32


@dataclass
class Setup:
    w3: Web3
    oracle: Contract
    manager: TransmissionManager
    transmitter: ManagedTransmitter
    epoch: int
    sign: Callable[[bytes], SignatureStruct]

    def report(self, round_: int, value: int) -> tuple[bytes, SignatureStruct]:
        now = int(self.w3.eth.get_block("latest")["timestamp"])
        update = FeedUpdate(FEED, value, now, b"\x22" * 32)
        payload = encode(Report(self.epoch, round_, (update,)))
        message = digest(self.w3.eth.chain_id, self.oracle.address, self.epoch, payload)
        return payload, self.sign(message)

    def sender_nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(self.sender)))

    @property
    def sender(self) -> str:
        return self.transmitter.sender


@pytest_asyncio.fixture
async def setup(anvil: Anvil, w3: Web3, engine: Engine) -> AsyncIterator[Setup]:
    oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    committee = start_committee(w3, oracle, 4)
    w3.eth.wait_for_transaction_receipt(
        oracle.functions.registerFeed(FEED, 8, "TEST / USD").transact()
    )
    account = Account.from_key(anvil.private_keys[1])
    manager = TransmissionManager(
        engine,
        account,
        TxManagerConfig(
            chain_id=int(w3.eth.chain_id),
            rpc_urls=(anvil.url,),
            confirmation_depth=1,
            poll_interval=0.05,
        ),
        registry=CollectorRegistry(),
        error_abis=[artifacts.load("MiraOracle").abi],
    )
    await manager.start()
    transmitter = ManagedTransmitter(
        anvil.url, str(oracle.address), str(account.address), lambda: manager, wait_s=20.0
    )
    try:
        yield Setup(w3, oracle, manager, transmitter, committee.epoch, committee.sign)
    finally:
        await manager.stop()


async def test_a_report_lands_once_through_the_manager(setup: Setup) -> None:
    payload, sig = setup.report(1, 2000_00000000)
    before = setup.sender_nonce()
    first = await setup.transmitter.submit(payload, sig, 1)
    assert first.fate is Fate.LANDED, first
    assert first.tx_hash is not None and first.tx_nonce == before
    latest = await setup.transmitter.latest([FEED])
    assert (latest[FEED].round, latest[FEED].value) == (1, 2000_00000000)
    # the same report again: the same transmission (keyed by the report hash), no new send
    again = await setup.transmitter.submit(payload, sig, 1)
    assert again.fate is Fate.LANDED
    assert again.tx_hash == first.tx_hash
    assert setup.sender_nonce() == before + 1
    rows = setup.manager.ctx.store.in_states(list(State))
    assert [r.key for r in rows] == [report_hash(payload)]


async def test_a_report_another_member_landed_is_not_sent_again_and_is_recorded(
    setup: Setup,
) -> None:
    payload, sig = setup.report(1, 2100_00000000)
    # another member's transmission lands the report first (a different sender)
    tx = setup.oracle.functions.transmit(payload, sig).transact()
    assert setup.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    before = setup.sender_nonce()
    result = await setup.transmitter.submit(payload, sig, 1)
    assert result.fate is Fate.ALREADY_APPLIED, result
    assert result.tx_hash is None and result.tx_nonce is None
    assert "NoUpdateApplied" in result.detail
    assert setup.sender_nonce() == before  # nothing was sent
    # recorded: the manager's row for the report hash says why it was not sent
    rows = setup.manager.ctx.store.in_states([State.FAILED])
    assert len(rows) == 1
    row = rows[0]
    assert row.key == report_hash(payload)
    assert row.tx_hash is None and row.nonce is None
    assert row.error is not None and "NoUpdateApplied" in row.error
    # and submitting it again changes nothing
    again = await setup.transmitter.submit(payload, sig, 1)
    assert again.fate is Fate.ALREADY_APPLIED
    assert setup.sender_nonce() == before


async def test_a_report_with_a_bad_signature_is_rejected_without_a_send(setup: Setup) -> None:
    payload, _ = setup.report(1, 2200_00000000)
    _, wrong = setup.report(2, 2200_00000000)  # a signature over another report
    before = setup.sender_nonce()
    result = await setup.transmitter.submit(payload, wrong, 1)
    assert result.fate is Fate.REJECTED, result
    assert "simulation reverted" in result.detail
    assert setup.sender_nonce() == before


async def test_a_report_with_callbacks_budgets_every_consumers_whole_gas_limit(
    setup: Setup,
) -> None:
    """The contract gives each consumer exactly its gas limit or reverts the whole
    transmit; what a callback uses in eth_estimateGas need not be what it uses on-chain.
    So the transmission's gas limit covers the estimate plus every consumer's whole limit
    (with EIP-150's 1/64), and the report lands with every callback made."""
    w3, oracle = setup.w3, setup.oracle
    burner = deploy(w3, "GasBurningConsumer")
    recorder = deploy(w3, "RecordingConsumer", oracle.address)
    for consumer, limit in ((burner, 1_000_000), (recorder, 300_000)):
        tx = oracle.functions.subscribe(consumer.address, [FEED], limit).transact({"value": 10**18})
        assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    payload, sig = setup.report(1, 2300_00000000)
    data = await setup.transmitter.transmit_data(payload, sig)
    estimate = w3.eth.estimate_gas({"from": setup.sender, "to": oracle.address, "data": data})
    result = await setup.transmitter.submit(payload, sig, 1)
    assert result.fate is Fate.LANDED, result
    (row,) = setup.manager.ctx.store.in_states(list(State))
    assert row.gas_limit >= estimate + (1_300_000 * 64) // 63
    assert row.gas_limit <= setup.manager.config.max_gas_limit
    receipt = w3.eth.get_transaction_receipt(result.tx_hash)
    failed = oracle.events.CallbackFailed().process_receipt(receipt, errors=DISCARD)
    assert [e["args"]["consumer"] for e in failed] == [burner.address]  # burnt its whole limit
    assert int(recorder.functions.calls().call()) == 1
    # with the consumers gone the manager estimates as before: no explicit limit
    for consumer in (burner, recorder):
        tx = oracle.functions.unsubscribe(consumer.address, [FEED]).transact()
        assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    payload, sig = setup.report(2, 2400_00000000)
    data = await setup.transmitter.transmit_data(payload, sig)
    assert await setup.transmitter.callback_gas(setup.sender, data) is None


async def test_subscribers_cannot_freeze_a_feed_by_burning_more_gas_than_a_block_holds(
    setup: Setup,
) -> None:
    """The attack: consumers at the maximum callback gas limit (2.5M) that burn all of it,
    more of them than a 30M-gas block holds (13). With the exact-gas rule a transmit needing
    more than a block would revert forever, uncharged. The oracle's callback gas budget (10M
    by default) refuses the subscriptions that would not fit, so the report lands and every
    accepted burner pays (a committee's feed is not for subscribers to stop)."""
    w3, oracle = setup.w3, setup.oracle
    w3.provider.make_request("evm_setBlockGasLimit", [hex(30_000_000)])  # type: ignore[arg-type]
    refused = keccak(text="CallbackGasBudgetExceeded(uint256,uint256)")[:4]
    burners = []
    for _ in range(13):
        burner = deploy(w3, "GasBurningConsumer")
        try:
            tx = oracle.functions.subscribe(burner.address, [FEED], 2_500_000).transact(
                {"value": 10**18}
            )
        except ContractCustomError as exc:
            assert bytes.fromhex(str(exc.data)[2:])[:4] == refused, exc
            continue
        assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
        burners.append(burner)
    assert len(burners) == 3  # 3 × (2.5M + 25k reserve) ≤ 10M < 4 × …
    payload, sig = setup.report(1, 2500_00000000)
    result = await setup.transmitter.submit(payload, sig, 1)
    assert result.fate is Fate.LANDED, result
    assert oracle.functions.latestRound(FEED).call()[1] == 2500_00000000


async def test_no_manager_yet_is_a_retryable_failure(anvil: Anvil, w3: Web3) -> None:
    oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    transmitter = ManagedTransmitter(anvil.url, str(oracle.address), "0x" + "00" * 20, lambda: None)
    result = await transmitter.submit(b"", SignatureStruct(0, 0, "0x" + "00" * 20, 0), 1)
    assert result.fate is Fate.FAILED


def _transmission(state: State, **fields: object) -> Transmission:
    base = Transmission(
        id=1, chain_id=1, key=b"k", sender="0x" + "00" * 20, to="0x" + "11" * 20, data=b"",
        value=0, gas_limit=None, max_fee_cap=None, state=state, nonce=None, tx_hash=None,
        error=None, cancelling=False, last_sent_block=None, included_block=None,
        included_block_hash=None, receipt_status=None, gas_used=None,
        effective_gas_price=None, l1_fee=None, created_at_ms=0, updated_at_ms=0,
        confirmed_at_ms=None,
    )  # fmt: skip
    return replace(base, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "fields", "fate"),
    [
        (State.QUEUED, {}, None),
        (State.SIMULATED, {"nonce": 3}, None),
        (State.SENT, {"nonce": 3, "tx_hash": b"\x01" * 32}, None),
        (State.DROPPED, {"nonce": 3}, None),
        (State.INCLUDED, {"receipt_status": 1, "gas_used": 50_000}, Fate.LANDED),
        (State.INCLUDED, {"receipt_status": 0}, Fate.REVERTED),
        (State.CONFIRMED, {"receipt_status": 1}, Fate.LANDED),
        (
            State.FAILED,
            {"error": "simulation reverted: NoUpdateApplied(epoch=1, round=4)"},
            Fate.ALREADY_APPLIED,
        ),
        (
            State.SUPERSEDED,
            {"error": "nonce taken; the call now reverts: NoUpdateApplied(epoch=1, round=4)"},
            Fate.ALREADY_APPLIED,
        ),
        (State.FAILED, {"error": "simulation reverted: InvalidSignature()"}, Fate.REJECTED),
        (
            State.FAILED,
            {"error": "reverted on chain in block 9", "receipt_status": 0},
            Fate.REVERTED,
        ),
        (State.SUPERSEDED, {"error": "nonce taken by another transaction"}, Fate.REJECTED),
    ],
)
def test_fate_mapping(state: State, fields: dict[str, object], fate: Fate | None) -> None:
    result = fate_of(_transmission(state, **fields))
    assert (None if result is None else result.fate) is fate
