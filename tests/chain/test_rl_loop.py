"""The RL loop closed on a real anvil: a GreedyPolicyAgent acts in a DriftingBandit on the
policy a MiraOracle holds; the node's feed runner learns from the agent's Step events and
its policy goes back on-chain in FROST-signed reports (one report per policy: every arm and
the recommended arm). The agent's choices shift toward the best arm. And the same loop in
the real-data market: SP500Stocks replayed as price feeds, a StockMarket paying the
realised return of the stock held a step.

One in-process signing group stands in for the committee's rounds (tested elsewhere): what
is under test is the loop's parts meeting on a chain, the contracts' fixed point, feed ids
and events against the Python side's."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from river import datasets
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from oracle.chain.anvil import Anvil
from oracle.chain.deploy import deploy
from oracle.chain.oracle_calls import MemberInfo, signature_struct, start_epoch_args
from oracle.config import load_feed_spec
from oracle.crypto.dkg import run_dkg_in_one_process
from oracle.crypto.frost import make_signers, run_signing
from oracle.crypto.suites import MIRA_EVM
from oracle.devnet import rl
from oracle.node.feeds import FeedRunner
from oracle.node.pipeline import FeedMetrics
from oracle.reporting import report as wire
from oracle.storage import Store, make_engine, upgrade

pytestmark = pytest.mark.anvil

ARMS = ("a", "b", "c")
RATES_PPM = (100_000, 900_000, 300_000)  # arm b pays best
FEED = "RL/market"
E8 = rl.E8


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

    def send(self, call: Any, what: str) -> Any:
        """``send(call, what)`` as oracle.devnet.rl's deployers take it."""
        return self.wait(call.transact())

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
    feeds = rl.policy_feeds(FEED, ARMS)
    arm_ids, rec_id = [f for _, f in feeds[:-1]], feeds[-1][1]
    # history depth 2: MiraOracle.latestRound searches a feed's ring (1 + log2(depth) cold
    # reads), and an agent reads K + 1 feeds every step
    for fid, fid32 in feeds:
        committee.wait(oracle.functions.registerFeed(fid32, 8, fid, rl.HISTORY_DEPTH).transact())
    loop = rl.deploy_market(
        w3, oracle.address, partial(deploy, w3), committee.send, feed=FEED, arms=ARMS,
        rates_ppm=RATES_PPM,
    )  # fmt: skip
    agent, market, deployed = loop.agent, loop.bandit, loop.from_block

    path = tmp_path / "rl_market.toml"
    text = rl.spec_text(
        anvil.url, agent.address, deployed, feed=FEED, arms=ARMS, epsilon=0.1, burn_in=2,
        fading=None,
    )  # fmt: skip
    path.write_text(text)
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


async def test_the_stock_market_pays_realised_returns_of_the_attested_prices(
    tmp_path: Path, anvil: Anvil, w3: Web3
) -> None:
    """The real-data market: the ten SP500Stocks price feeds (feeds/rl/sp500_prices.toml,
    replayed a trading day per step) and the policy go on-chain in signed reports; a
    GreedyPolicyAgent holds the recommended stock a step; the StockMarket pays the realised
    return from the two attested prices; the node's policy learns exactly those rewards."""
    w3.provider.make_request("anvil_setBlockTimestampInterval", [1])  # type: ignore[arg-type]
    oracle = deploy(w3, "MiraOracle", w3.eth.accounts[0], 3600, 86400, 3600, 300)
    committee = Committee(w3, oracle)
    prices = rl.price_feeds()
    policy = rl.policy_feeds(rl.STOCK_FEED, rl.TICKERS)
    for fid, fid32 in [*prices, *policy]:
        committee.wait(oracle.functions.registerFeed(fid32, 8, fid, rl.HISTORY_DEPTH).transact())
    loop = rl.deploy_stock_market(w3, oracle.address, partial(deploy, w3), committee.send)
    agent, market = loop.agent, loop.market
    assert market.functions.priceFeeds().call() == [f for _, f in prices]

    # the prices' clock starts now: row i (trading day i) is observed at start + i seconds
    start_s = int(w3.eth.get_block("latest")["timestamp"])
    (tmp_path / "prices.toml").write_text(rl.price_spec_text(start_s * 1000, realtime=False))
    price_spec = load_feed_spec(tmp_path / "prices.toml")
    assert [o.id_bytes32 for o in price_spec.outputs] == [f for _, f in prices]
    (tmp_path / "stocks.toml").write_text(
        rl.stock_spec_text(anvil.url, agent.address, loop.from_block, epsilon=0.1, fading=None)
    )
    spec = load_feed_spec(tmp_path / "stocks.toml")
    engine = make_engine(f"sqlite:///{tmp_path / 'node.sqlite'}")
    upgrade(engine)
    store, metrics = Store(engine), FeedMetrics(CollectorRegistry())
    price_runner = FeedRunner(price_spec, store, metrics, replay_batch=1)  # a row a poll
    runner = FeedRunner(spec, store, metrics)
    price_runner.restore()
    runner.restore()
    # the dataset's own returns (percent), read from river without Mira's code
    returns = [dict(x) for x, _ in datasets.SP500Stocks()]

    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    await runner.poll()  # the prior policy
    assert runner.pipeline.last_output is not None
    pending = runner.latest_updates()
    learned_seq = 0
    day: list[dict[str, int]] = []  # each row's published prices
    acted: list[tuple[int, int]] = []  # each step's (recommended arm, policy round) read
    steps = 60
    for i in range(steps):
        await price_runner.poll()
        assert price_runner.last_poll_error is None, price_runner.last_poll_error
        out = price_runner.pipeline.last_output
        assert out is not None and out.seq == i + 1
        day.append({a.arm: a.value for a in out.arms})
        committee.transmit(price_runner.latest_updates() + pending)
        pending = []
        _, recommended, round_ = agent.functions.policy().call()
        acted.append((int(recommended), int(round_)))
        receipt = committee.wait(agent.functions.step().transact())
        events = agent.events.Step().process_receipt(receipt, errors=DISCARD)
        realised = market.events.ReturnRealised().process_receipt(receipt, errors=DISCARD)
        if i == 0:  # a holding is paid when it closes, at the next step
            assert len(events) == len(realised) == 0
        else:
            [step], [paid] = events, realised
            arm = int(step["args"]["arm"])
            ticker = rl.TICKERS[arm]
            # the agent acted on the attested policy: its recommended arm, at its round
            assert (arm, int(step["args"]["policyRound"])) == acted[i - 1]
            assert int(step["args"]["step"]) == i
            # held from day i-1's price to day i's, both as attested
            entry, exit_ = day[i - 1][ticker], day[i][ticker]
            assert (int(paid["args"]["arm"]), paid["args"]["entry"], paid["args"]["exit"]) == (
                arm,
                entry,
                exit_,
            )
            reward = int(step["args"]["reward"])
            assert reward == int(paid["args"]["reward"]) == rl.realised(entry, exit_)
            # ... which is the stock's return that day in the dataset, to the index's rounding
            assert abs(reward - round(returns[i][ticker] * 10**6)) <= 1, (i, ticker, reward)
        await runner.poll()
        assert runner.last_poll_error is None, runner.last_poll_error
        policy_out = runner.pipeline.last_output
        if policy_out is not None and policy_out.seq > learned_seq and policy_out.publish:
            pending = runner.latest_updates()
            learned_seq = policy_out.seq
    w3.provider.make_request("evm_mine", [])  # confirm the last step
    await runner.poll()

    # the node learned every step once, exactly the rewards the market paid
    all_steps = rl.steps(agent, loop.from_block)
    assert [int(e["args"]["step"]) for e in all_steps] == list(range(1, steps))
    model = runner.pipeline.model
    assert model.seq == steps - 1
    assert store.rejection_counts(spec.id) == {}
    assert store.rejection_counts(price_spec.id) == {}
    paid_by_arm: dict[str, list[float]] = {t: [] for t in rl.TICKERS}
    for e in all_steps:
        paid_by_arm[rl.TICKERS[int(e["args"]["arm"])]].append(int(e["args"]["reward"]) / E8)
    assert model.metrics()["pulls"] == {t: len(r) for t, r in paid_by_arm.items()}
    last = runner.pipeline.last_output
    assert last is not None
    for arm_out in last.arms[:-1]:  # an arm's score: the mean of its rewards (stats.Mean)
        rewards = paid_by_arm[arm_out.arm]
        mean = math.fsum(rewards) / len(rewards) if rewards else 0.0
        assert math.isclose(arm_out.raw_value, mean, rel_tol=1e-9, abs_tol=1e-15), arm_out
    total = sum(int(e["args"]["reward"]) for e in all_steps)
    assert int(market.functions.balanceOf(agent.address).call()) == total
    # the prices on-chain are the last row's, as the replay computed them
    for (_, fid32), ticker in zip(prices, rl.TICKERS, strict=True):
        _, value, observed = oracle.functions.latestRound(fid32).call()
        assert (value, observed) == (day[-1][ticker], start_s + steps - 1)
