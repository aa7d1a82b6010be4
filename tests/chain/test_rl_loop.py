"""The RL loop closed on a real anvil: a GreedyPolicyAgent acts in a DriftingBandit on the
policy a MiraOracle holds; the node's feed runner learns from the agent's Step events and
its policy goes back on-chain in FROST-signed reports (one report per policy: every arm and
the recommended arm). The agent's choices shift toward the best arm.

One in-process signing group stands in for the committee's rounds (tested elsewhere): what
is under test is the loop's parts meeting on a chain, the contracts' fixed point, feed ids
and events against the Python side's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from oracle.chain.anvil import Anvil
from oracle.chain.deploy import deploy
from oracle.chain.oracle_calls import MemberInfo, signature_struct, start_epoch_args
from oracle.config import load_feed_spec
from oracle.config.feeds import arm_feed_id, feed_id_bytes32, recommended_feed_id
from oracle.crypto.dkg import run_dkg_in_one_process
from oracle.crypto.frost import make_signers, run_signing
from oracle.crypto.suites import MIRA_EVM
from oracle.node.feeds import FeedRunner
from oracle.node.pipeline import FeedMetrics
from oracle.reporting import report as wire
from oracle.storage import Store, make_engine, upgrade

pytestmark = pytest.mark.anvil

ARMS = ["a", "b", "c"]
RATES_PPM = [100_000, 900_000, 300_000]  # arm b pays best
E8 = 10**8

SPEC = """
id = "RL/market"
version = 1
description = "a 3-armed market's policy, learned from the agent's steps"
decimals = 8

[[sources]]
name = "agent"
kind = "chain_events"
rpc_url = "{url}"
address = "{address}"
contract = "GreedyPolicyAgent"
event = "Step"
scale_decimals = 8
confirmations = 1
from_block = {from_block}

[sources.fields]
arm = "arm"
reward = "reward"

[sources.decimals]
arm = 0

[sources.limits]
reward = [0.0, 1.0]

[features]
fields = ["arm", "reward"]

[[model.steps]]
class = "bandit.EpsilonGreedy"
epsilon = 0.1
burn_in = 2
seed = 42

[model.steps.reward_obj]
class = "stats.Mean"

[output]
kind = "policy"
arms = ["a", "b", "c"]
arm_field = "arm"
reward_field = "reward"
recommend = true

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 1
heartbeat_s = 3600
"""


class Committee:
    """Signs and transmits reports with one epoch's group key (3-of-4, DKG in process)."""

    def __init__(self, w3: Web3, oracle: Any) -> None:
        self.w3, self.oracle = w3, oracle
        self.dkg = run_dkg_in_one_process(MIRA_EVM, 3, 4)
        self.signers = make_signers(MIRA_EVM, self.dkg.public, self.dkg.keys)
        members = [
            MemberInfo(
                Web3.to_checksum_address(w3.eth.accounts[i + 1]),
                b"\x02" + bytes([i + 1]) * 32,
                f"http://127.0.0.1:{9000 + i}",
            )
            for i in range(4)
        ]
        args = start_epoch_args(self.dkg.public.group_key, 3, members)
        self.wait(oracle.functions.startEpoch(*args).transact())
        self.round = 0

    def wait(self, tx: Any) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1
        return receipt

    def transmit(self, updates: list[wire.FeedUpdate]) -> None:
        now_ms = int(self.w3.eth.get_block("latest")["timestamp"]) * 1000
        self.round = max(self.round + 1, now_ms)
        data = wire.encode(wire.Report(1, self.round, tuple(updates)))
        digest = wire.digest(int(self.w3.eth.chain_id), self.oracle.address, 1, data)
        signing = list(self.signers.values())[:3]
        outcome = run_signing(MIRA_EVM, self.dkg.public, digest, signing)
        sig = signature_struct(self.dkg.public.group_key, digest, outcome.encoded)
        self.wait(self.oracle.functions.transmit(data, tuple(sig)).transact())


async def test_the_agent_learns_the_best_arm_through_the_oracle(
    tmp_path: Path, anvil: Anvil, w3: Web3
) -> None:
    # a block a second: each step and each report is observed at its own second
    w3.provider.make_request("anvil_setBlockTimestampInterval", [1])  # type: ignore[arg-type]
    oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    committee = Committee(w3, oracle)
    arm_ids = [feed_id_bytes32(arm_feed_id("RL/market", a)) for a in ARMS]
    rec_id = feed_id_bytes32(recommended_feed_id("RL/market"))
    # history depth 2: MiraOracle.latestRound searches a feed's ring (1 + log2(depth) cold
    # reads), and an agent reads K + 1 feeds every step
    for fid in [*arm_ids, rec_id]:
        committee.wait(oracle.functions.registerFeed(fid, 8, "RL/market", 2).transact())
    market = deploy(w3, "DriftingBandit", RATES_PPM, 0)
    agent = deploy(
        w3, "GreedyPolicyAgent", oracle.address, market.address, arm_ids, rec_id, [], 3600, 0, E8
    )
    committee.wait(market.functions.setAgent(agent.address).transact())

    path = tmp_path / "rl_market.toml"
    deployed = int(w3.eth.block_number)
    text = SPEC.replace("{url}", anvil.url).replace("{address}", agent.address)
    path.write_text(text.replace("{from_block}", str(deployed)))
    spec = load_feed_spec(path)
    assert [o.id_bytes32 for o in spec.outputs] == [*arm_ids, rec_id]
    engine = make_engine(f"sqlite:///{tmp_path / 'node.sqlite'}")
    upgrade(engine)
    runner = FeedRunner(spec, Store(engine), FeedMetrics(CollectorRegistry()))
    runner.restore()

    # the bootstrap: the agent refuses a never-published policy ...
    never = Web3.keccak(text="FeedNeverUpdated(bytes32)")[:4].hex()  # the error's selector
    with pytest.raises(ContractLogicError, match=never):
        agent.functions.step().call()
    # ... so before any step the runner's output is the prior, observed at from_block once
    # it is confirmed: every arm's prior score (0), arm a recommended
    await runner.poll()
    assert runner.pipeline.last_output is None  # from_block not confirmed yet
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    await runner.poll()
    assert runner.last_poll_error is None, runner.last_poll_error
    prior = runner.latest_updates()
    at = int(w3.eth.get_block(deployed)["timestamp"])
    assert [(u.feed_id, u.value, u.observed_at) for u in prior] == [
        (f, 0, at) for f in [*arm_ids, rec_id]
    ]
    assert runner.pipeline.model.seq == 0
    committee.transmit(prior)

    choices: list[int] = []
    transmitted_seq = 0
    for _ in range(100):
        agent.functions.step().call()  # a refusal names its error here
        receipt = committee.wait(agent.functions.step().transact())
        [step] = agent.events.Step().process_receipt(receipt, errors=DISCARD)  # and RewardPaid
        choices.append(int(step["args"]["arm"]))
        await runner.poll()
        assert runner.last_poll_error is None, runner.last_poll_error
        out = runner.pipeline.last_output
        if out is not None and out.seq > transmitted_seq and out.publish:
            committee.transmit(runner.latest_updates())
            transmitted_seq = out.seq

    assert runner.pipeline.model.seq >= 98  # every confirmed step learned once
    assert runner.pipeline.store.rejection_counts(spec.id) == {}
    learned = runner.pipeline.model.metrics()["pulls"]
    assert sum(learned.values()) == runner.pipeline.model.seq
    assert learned == {a: choices[: runner.pipeline.model.seq].count(i) for i, a in enumerate(ARMS)}
    # the on-chain policy is the node's latest published one
    scores, recommended, _ = agent.functions.policy().call()
    last = [a.value for a in runner.pipeline.last_output.arms]  # type: ignore[union-attr]
    assert [*scores, recommended * E8] == last or transmitted_seq < runner.pipeline.model.seq
    # the agent's choices shift toward the best arm (b): uniformly random would be 1/3
    assert choices[:10].count(1) < 8
    assert choices[-50:].count(1) >= 30, choices
    assert int(market.functions.balanceOf(agent.address).call()) > 0
