"""Rounds against the chain's rules (issue 12, items 8 and 11).

* Round numbers are milliseconds, so an operator who raises ``round_period_s`` does not
  send every later report below the feed's on-chain round (skipped as stale for good).
* A feed the oracle never registered is skipped by the contract; the nodes see that on-chain
  and keep reporting the registered feeds (on anvil, with a real MiraOracle).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import coincurve
import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from web3 import Web3

from oracle import artifacts
from oracle.chain.anvil import Anvil
from oracle.chain.deploy import deploy
from oracle.chain.oracle_calls import MemberInfo, start_epoch_args
from oracle.crypto.dkg import run_dkg_in_one_process
from oracle.crypto.suites import MIRA_EVM
from oracle.reporting.protocol import FeedPolicy
from oracle.reporting.report import FeedUpdate
from oracle.reporting.rounds import period_ms, round_at, slot_of
from oracle.reporting.transmit import NOT_REGISTERED, ChainReader, ManagedTransmitter
from oracle.storage import make_engine, upgrade
from oracle.transmission import TransmissionManager, TxManagerConfig
from tests.reporting.test_round_protocol import COMMITMENT, FEED, _network, _until

REGISTERED = b"\x21" * 32
UNREGISTERED = b"\x22" * 32


# -- round numbers ------------------------------------------------------------------------


@given(
    t1=st.integers(1_700_000_000_000, 1_800_000_000_000),
    gap=st.integers(0, 10**7),
    p1=st.integers(50, 60_000),
    p2=st.integers(50, 60_000),
)
def test_a_new_period_never_goes_below_earlier_rounds_after_one_new_period(
    t1: int, gap: int, p1: int, p2: int
) -> None:
    """Whatever the old and new periods, the rounds of the new one exceed every earlier round
    one new period after the switch, and no round is ever after its own time (the contract
    accepts rounds up to the block's time plus maxFutureDrift)."""
    before = round_at(t1, p1)
    t2 = t1 + p2 + gap
    after = round_at(t2, p2)
    assert after > before
    assert before <= t1 and after <= t2


def test_period_ms_rounds_to_whole_milliseconds() -> None:
    assert period_ms(0.25) == 250
    assert period_ms(0.2) == 200  # 0.2 * 1000 is 200.00000000000003 in binary floating point
    with pytest.raises(ValueError, match="below one millisecond"):
        period_ms(0.0001)


async def test_raising_the_round_period_keeps_reports_landing(tmp_path: Path) -> None:
    """The committee restarts with a five times longer period. With slot-numbered rounds
    (⌊t / period⌋) its rounds would drop fivefold below the feed's latest round and every
    report would be skipped as stale (the fake chain applies only higher rounds, as the
    contract does)."""
    (tmp_path / "fast").mkdir()
    (tmp_path / "slow").mkdir()
    async with _network(tmp_path / "fast", [1000] * 4, period_ms=200) as net:
        await _until(lambda: FEED in net.chain.values)
        chain, dkg = net.chain, net.dkg
    first = chain.values[FEED].round
    async with _network(tmp_path / "slow", [1100] * 4, period_ms=1000, chain=chain, dkg=dkg) as net:
        await _until(lambda: chain.values[FEED].value == 1100, timeout=12.0)
        assert chain.values[FEED].round > first
        # leaders rotate by slot, not by round number (1000 ms rounds are all ≡ 0 mod 4)
        r = net.nodes[0].now_round()
        assert [net.nodes[0].leader_of(r + k * 1000) for k in range(4)] == [
            (slot_of(r, 1000) + k) % 4 for k in range(4)
        ]


# -- an unregistered feed on a real chain ----------------------------------------------------


class TwoFeeds:
    """Every node's output: the same value for a registered and an unregistered feed."""

    def __init__(self, value: int) -> None:
        self.value = value

    def latest_outputs(self) -> dict[bytes, FeedUpdate]:
        now = int(time.time())
        return {f: FeedUpdate(f, self.value, now, COMMITMENT) for f in (REGISTERED, UNREGISTERED)}

    def latest_output(self, feed_id: bytes) -> FeedUpdate | None:
        return self.latest_outputs().get(feed_id)  # whatever a subclass makes up

    def output_at(self, feed_id: bytes, observed_at: int) -> FeedUpdate | None:
        return None

    async def make_durable(self) -> None:
        pass


def _member(i: int, operator: str) -> MemberInfo:
    identity = coincurve.PrivateKey((i + 1).to_bytes(32, "big")).public_key.format(compressed=True)
    return MemberInfo(operator, identity, f"http://127.0.0.1:{9000 + i}")


@pytest.mark.anvil
async def test_nodes_keep_reporting_registered_feeds_when_one_is_unregistered(
    tmp_path: Path, anvil: Anvil, w3: Web3
) -> None:
    oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    dkg = run_dkg_in_one_process(MIRA_EVM, 3, 4)
    operators = [Web3.to_checksum_address(w3.eth.accounts[i + 1]) for i in range(4)]
    members = [_member(i, op) for i, op in enumerate(operators)]
    w3.eth.wait_for_transaction_receipt(
        oracle.functions.startEpoch(*start_epoch_args(dkg.public.group_key, 3, members)).transact()
    )
    w3.eth.wait_for_transaction_receipt(
        oracle.functions.registerFeed(REGISTERED, 8, "REG / USD").transact()
    )
    reader = ChainReader(anvil.url, str(oracle.address))
    latest = await reader.latest([REGISTERED, UNREGISTERED])
    assert latest[UNREGISTERED] == NOT_REGISTERED
    assert latest[REGISTERED].registered and latest[REGISTERED].round == 0

    policies = {
        f: FeedPolicy(f, name, 50, 3600, 100, COMMITMENT)
        for f, name in ((REGISTERED, "REG/USD"), (UNREGISTERED, "UNREG/USD"))
    }
    sources = [TwoFeeds(1000) for _ in range(4)]
    managers = []  # each member's transaction manager, on a database of its own
    for i, k in enumerate(anvil.private_keys[1:5]):
        engine = make_engine(f"sqlite:///{tmp_path / f'tx{i}.sqlite'}")
        upgrade(engine)
        managers.append(
            TransmissionManager(
                engine,
                Account.from_key(k),
                TxManagerConfig(
                    chain_id=int(w3.eth.chain_id),
                    rpc_urls=(anvil.url,),
                    confirmation_depth=1,
                    poll_interval=0.05,
                ),
                registry=CollectorRegistry(),
                error_abis=[artifacts.load("MiraOracle").abi],
            )
        )
    transmitters = [
        ManagedTransmitter(anvil.url, str(oracle.address), m.ctx.sender, lambda m=m: m, wait_s=20.0)
        for m in managers
    ]
    for m in managers:
        await m.start()

    def onchain() -> int:
        return int(oracle.functions.latestRound(REGISTERED).call()[1])

    try:
        async with _network(
            tmp_path, [], sources=sources, policies=policies, dkg=dkg, transmitters=transmitters
        ):
            await _until(lambda: onchain() == 1000, timeout=20.0)
            for s in sources:  # a 1 % move: due again, and lands again
                s.value = 1010
            await _until(lambda: onchain() == 1010, timeout=20.0)
            await asyncio.sleep(0)
    finally:
        for m in managers:
            await m.stop()
    # the nodes never even put the unregistered feed into a report (they read that it is
    # not registered), so the contract never had to skip it
    skipped = oracle.events.UpdateSkipped().get_logs(from_block=0)
    assert [e for e in skipped if bytes(e["args"]["feedId"]) == UNREGISTERED] == []
    assert not oracle.functions.isRegistered(UNREGISTERED).call()
