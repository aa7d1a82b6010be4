"""The RL loop as the devnet and ``mira bench rl`` run it: a K-armed DriftingBandit with a
GreedyPolicyAgent acting on the committee's policy, a twin bandit with a RandomAgent as
the baseline, the policy feed's spec (its source: the agent's Step events), the actor
that makes both agents act, and the regret of what they did.

The bandit's rate schedule and the regret of a sequence of pulls are
oracle.chain.bandit's (:attr:`Market.schedule`): one computation for the bench, the node's
learning-loop view and the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from oracle.chain.bandit import Schedule
from oracle.config.feeds import arm_feed_id, feed_id_bytes32, recommended_feed_id

FEED = "RL/bandit"
ARMS = ("a", "b", "c", "d", "e")
# The arms' reward rates (ppm). Rotating them by one (the drift) moves the best rate to the
# arm that had the second best, and drops the old best to the worst.
RATES_PPM = (100_000, 200_000, 300_000, 500_000, 900_000)
HISTORY_DEPTH = 2  # the agent reads K + 1 feeds a step; MiraOracle.latestRound scans the ring
MAX_POLICY_AGE_S = 3600
STEP_GAS = 1_000_000  # a fixed limit: no estimateGas round trip per step

SPEC = """id = "{feed}"
version = 1
description = "a {k}-armed drifting market's policy, learned from its agent's steps"
decimals = 8
poll_interval_s = {poll_s}

[[sources]]
name = "agent"
kind = "chain_events"
rpc_url = "{rpc_url}"
address = "{agent}"
contract = "GreedyPolicyAgent"
event = "Step"
scale_decimals = 8
confirmations = {confirmations}
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

# epsilon-greedy on an exponentially weighted mean: the estimate forgets, so a drift is
# followed within a few dozen steps rather than after as many steps as were learned
[[model.steps]]
class = "bandit.EpsilonGreedy"
epsilon = {epsilon}
burn_in = 1
seed = 42

[model.steps.reward_obj]
class = "stats.EWMean"
fading_factor = {fading}

[output]
kind = "policy"
arms = [{arms}]
arm_field = "arm"
reward_field = "reward"
recommend = true

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 1
heartbeat_s = {heartbeat_s}
{baseline}"""

# the on-chain baseline a node's learning-loop view shows beside the agent (GET /v1/loop)
BASELINE = """
[eval]
random_agent = "{random_agent}"
"""


def spec_text(
    rpc_url: str,
    agent: str,
    from_block: int,
    *,
    feed: str = FEED,
    arms: Sequence[str] = ARMS,
    confirmations: int = 1,
    poll_s: float = 0.2,
    epsilon: float = 0.05,
    fading: float = 0.1,
    heartbeat_s: int = 3600,
    random_agent: str | None = None,
) -> str:
    """The policy feed's spec: its source is ``agent``'s Step events from ``from_block``
    (the agent's deployment: the prior is published as observed then); ``random_agent``:
    the uniform-random baseline acting in a twin bandit (``[eval] random_agent``)."""
    return SPEC.format(
        feed=feed,
        k=len(arms),
        poll_s=poll_s,
        rpc_url=rpc_url,
        agent=agent,
        confirmations=confirmations,
        from_block=from_block,
        epsilon=epsilon,
        fading=fading,
        arms=", ".join(f'"{a}"' for a in arms),
        heartbeat_s=heartbeat_s,
        baseline="" if random_agent is None else BASELINE.format(random_agent=random_agent),
    )


def policy_feeds(feed: str = FEED, arms: Sequence[str] = ARMS) -> list[tuple[str, bytes]]:
    """The policy's on-chain feeds, (id, bytes32) per arm then the recommended arm."""
    ids = [arm_feed_id(feed, a) for a in arms] + [recommended_feed_id(feed)]
    return [(i, feed_id_bytes32(i)) for i in ids]


@dataclass
class Market:
    """The deployed loop: the policy agent's bandit and the random agent's twin."""

    agent: Contract
    bandit: Contract
    random_agent: Contract
    random_bandit: Contract
    rates_ppm: tuple[int, ...]
    drift_every: int
    from_block: int  # the block the agents were deployed in

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.rates_ppm, self.drift_every)


def deploy_market(
    w3: Web3,
    oracle: str,
    deploy: Callable[..., Contract],
    send: Callable[[Any, str], Any],
    *,
    feed: str = FEED,
    arms: Sequence[str] = ARMS,
    rates_ppm: Sequence[int] = RATES_PPM,
    drift_every: int = 0,
) -> Market:
    """Deploy both bandits and agents (the policy feeds must be registered: the agent
    reads their decimals). ``deploy(name, *args)`` deploys, ``send(call, what)`` sends."""
    feeds = [b for _, b in policy_feeds(feed, arms)]
    rates = list(rates_ppm)
    bandit = deploy("DriftingBandit", rates, drift_every)
    agent = deploy(
        "GreedyPolicyAgent", oracle, bandit.address, feeds[:-1], feeds[-1], [],
        MAX_POLICY_AGE_S, 0, 10**8,
    )  # fmt: skip
    send(bandit.functions.setAgent(agent.address), "binding the bandit to its agent")
    twin = deploy("DriftingBandit", rates, drift_every)
    random_agent = deploy("RandomAgent", twin.address)
    send(twin.functions.setAgent(random_agent.address), "binding the twin to the random agent")
    return Market(
        agent, bandit, random_agent, twin, tuple(rates), drift_every, int(w3.eth.block_number)
    )


class Actor:
    """Makes both agents act: ``act`` sends ``steps`` step transactions of each (from an
    unlocked anvil account, fixed gas, no waiting) and returns their hashes."""

    def __init__(self, w3: Web3, market: Market, sender: str) -> None:
        self.w3, self.market, self.sender = w3, market, sender
        self._agent_call = market.agent.functions.step()._encode_transaction_data()
        self._random_call = market.random_agent.functions.step()._encode_transaction_data()

    def ready(self) -> bool:
        """Whether the agent would act now: its policy is published and fresh."""
        try:
            self.market.agent.functions.policy().call()
        except Exception:  # FeedNeverUpdated, StaleFeed, …: not yet
            return False
        return True

    def act(self, steps: int = 1) -> list[HexBytes]:
        hashes = []
        for to, data in (
            (self.market.agent.address, self._agent_call),
            (self.market.random_agent.address, self._random_call),
        ):
            for _ in range(steps):
                tx = {"from": self.sender, "to": to, "data": data, "gas": STEP_GAS}
                hashes.append(self.w3.eth.send_transaction(tx))  # type: ignore[arg-type]
        return hashes


def steps(agent: Contract, from_block: int, to_block: int | str = "latest") -> list[Any]:
    """The agent's Step events in order (each its pull in its own bandit: the agent is the
    bandit's only caller and acts once a step)."""
    logs = agent.events.Step().get_logs(from_block=from_block, to_block=to_block)
    return sorted(logs, key=lambda e: int(e["args"]["step"]))
