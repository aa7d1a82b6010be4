"""The RL loop as the devnet and ``mira bench rl`` run it: a K-armed DriftingBandit with a
GreedyPolicyAgent acting on the committee's policy, a twin bandit with a RandomAgent as
the baseline, the policy feed's spec (its source: the agent's Step events), the actor
that makes both agents act, and the regret of what they did.

The real-data market is the same loop in a StockMarket: its arms are SP500Stocks tickers
published as Mira price feeds (``feeds/rl/sp500_prices.toml``: each stock's close rebased
to 100, replayed a trading day per row), and holding a stock for one step pays its realised
return, computed on-chain from the two feed values (``deploy_stock_market``).

The bandit's rate schedule and the regret of a sequence of pulls are
oracle.chain.bandit's (:attr:`Market.schedule`): one computation for the bench, the node's
learning-loop view and the dashboard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from oracle import bundle
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
E8 = 10**8  # one in the arm feeds' and the rewards' fixed point (8 decimals)

# The real-data market: the price feeds' spec (its id "SP500/price"), its tickers, the policy
PRICE_FEED = "SP500/price"
TICKERS = ("AAPL", "AMZN", "IBM", "INTC", "JNJ", "JPM", "KO", "MSFT", "WMT", "XOM")
STOCK_FEED = "RL/stocks"
MAX_PRICE_AGE_S = 3600  # the StockMarket trades at no price older than this
# a one-step return beyond ±100 % is no return of these stocks: rejected, never learned
STOCK_REWARD_LIMITS = (-1.0, 1.0)

SPEC = """id = "{feed}"
version = 1
description = "{description}"
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
reward = [{reward_low!r}, {reward_high!r}]

[features]
fields = ["arm", "reward"]

# epsilon-greedy on an exponentially weighted mean: the estimate forgets, so a drift is
# followed within a few dozen steps rather than after as many steps as were learned (or on
# the plain mean, fading = None)
[[model.steps]]
class = "bandit.EpsilonGreedy"
epsilon = {epsilon}
burn_in = {burn_in}
seed = 42

[model.steps.reward_obj]
{reward_obj}

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
    fading: float | None = 0.1,
    burn_in: int = 1,
    heartbeat_s: int = 3600,
    reward_limits: tuple[float, float] = (0.0, 1.0),
    description: str | None = None,
    random_agent: str | None = None,
) -> str:
    """The policy feed's spec: its source is ``agent``'s Step events from ``from_block``
    (the agent's deployment: the prior is published as observed then); ``random_agent``:
    the uniform-random baseline acting in a twin bandit (``[eval] random_agent``)."""
    reward_obj = (
        'class = "stats.Mean"'
        if fading is None
        else f'class = "stats.EWMean"\nfading_factor = {fading}'
    )
    return SPEC.format(
        feed=feed,
        description=description
        or f"a {len(arms)}-armed drifting market's policy, learned from its agent's steps",
        poll_s=poll_s,
        rpc_url=rpc_url,
        agent=agent,
        confirmations=confirmations,
        from_block=from_block,
        epsilon=epsilon,
        burn_in=burn_in,
        reward_obj=reward_obj,
        reward_low=float(reward_limits[0]),
        reward_high=float(reward_limits[1]),
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


def _deploy_agent(
    deploy: Callable[..., Contract],
    send: Callable[[Any, str], Any],
    oracle: str,
    environment: Contract,
    feeds: Sequence[bytes],
    min_score: int,
    max_score: int,
) -> Contract:
    """A GreedyPolicyAgent acting in ``environment`` on the policy ``feeds`` (every arm's,
    then the recommended arm's; they must be registered: the agent reads their decimals),
    bound to its environment."""
    agent = deploy(
        "GreedyPolicyAgent", oracle, environment.address, list(feeds[:-1]), feeds[-1], [],
        MAX_POLICY_AGE_S, min_score, max_score,
    )  # fmt: skip
    send(environment.functions.setAgent(agent.address), "binding the environment to its agent")
    return agent


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
    agent = _deploy_agent(deploy, send, oracle, bandit, feeds, 0, E8)
    twin = deploy("DriftingBandit", rates, drift_every)
    random_agent = deploy("RandomAgent", twin.address)
    send(twin.functions.setAgent(random_agent.address), "binding the twin to the random agent")
    return Market(
        agent, bandit, random_agent, twin, tuple(rates), drift_every, int(w3.eth.block_number)
    )


@dataclass
class StockLoop:
    """The deployed real-data market: the policy agent's StockMarket. No RandomAgent: it
    serves immediate environments only, and a StockMarket pays a step late; uniformly
    random play's expected return is computed from the prices instead (oracle.bench)."""

    agent: Contract
    market: Contract
    tickers: tuple[str, ...]
    from_block: int  # the block the agents were deployed in


def price_feeds(tickers: Sequence[str] = TICKERS) -> list[tuple[str, bytes]]:
    """The price feeds the StockMarket's arms are, (id, bytes32) per ticker: the fields of
    ``feeds/rl/sp500_prices.toml`` (a ``values`` feed: one on-chain feed per field)."""
    ids = [arm_feed_id(PRICE_FEED, t) for t in tickers]
    return [(i, feed_id_bytes32(i)) for i in ids]


def price_spec_path() -> Path:
    return bundle.locate(bundle.DEMO_FEEDS) / "rl" / "sp500_prices.toml"


def price_spec_text(start_ms: int, *, realtime: bool, step_ms: int = 1000) -> str:
    """``feeds/rl/sp500_prices.toml`` as a committee runs it: row i (trading day i) observed
    at ``start_ms + i · step_ms``, released then when ``realtime`` (the same clock at every
    member, so they agree row by row; the prices must be fresh for the StockMarket)."""
    text = price_spec_path().read_text()
    clock = f"start_ms = {start_ms}\nstep_ms = {step_ms}\nrealtime = {str(realtime).lower()}"
    source = r'^(dataset[ \t]*=[ \t]*"river:SP500Stocks"[ \t]*)$'
    out, n = re.subn(source, rf"\1\n{clock}", text, flags=re.M)
    if n != 1:
        raise ValueError(f"{price_spec_path()}: expected one river:SP500Stocks replay source")
    return out


def stock_spec_text(rpc_url: str, agent: str, from_block: int, **kwargs: Any) -> str:
    """The real-data market's policy spec (:func:`spec_text` over the tickers: rewards are
    one-step realised returns, 1.0 = +100 %). By default each stock's score is the plain
    mean of its realised returns (a drift estimate): no regime change is scheduled here."""
    kwargs.setdefault("feed", STOCK_FEED)
    kwargs.setdefault("fading", None)
    kwargs.setdefault("arms", TICKERS)
    kwargs.setdefault("reward_limits", STOCK_REWARD_LIMITS)
    kwargs.setdefault(
        "description",
        f"which of {len(kwargs['arms'])} SP500Stocks tickers to hold a step, learned from "
        "its agent's realised returns",
    )
    return spec_text(rpc_url, agent, from_block, **kwargs)


def realised(entry: int, exit_: int) -> int:
    """StockMarket's reward for holding from ``entry`` to ``exit_`` (fixed point, 8
    decimals): (exit − entry) · 10^8 / entry, Solidity's division (rounding toward zero)."""
    num = (exit_ - entry) * E8
    q = abs(num) // entry
    return q if num >= 0 else -q


def deploy_stock_market(
    w3: Web3,
    oracle: str,
    deploy: Callable[..., Contract],
    send: Callable[[Any, str], Any],
    *,
    feed: str = STOCK_FEED,
    tickers: Sequence[str] = TICKERS,
) -> StockLoop:
    """Deploy the StockMarket on the tickers' price feeds and its agent (the price and
    policy feeds must be registered). Scores are mean returns: within ±1.0."""
    prices = [b for _, b in price_feeds(tickers)]
    market = deploy("StockMarket", oracle, prices, MAX_PRICE_AGE_S)
    feeds = [b for _, b in policy_feeds(feed, tickers)]
    agent = _deploy_agent(deploy, send, oracle, market, feeds, -E8, E8)
    return StockLoop(agent, market, tuple(tickers), int(w3.eth.block_number))


class Actor:
    """Makes the agents act (a bandit's policy agent and random agent; a StockMarket's
    agent): ``act`` sends ``steps`` step transactions of each (from an unlocked anvil
    account, fixed gas, no waiting) and returns their hashes, agent by agent."""

    def __init__(self, w3: Web3, market: Market | StockLoop, sender: str) -> None:
        self.w3, self.market, self.sender = w3, market, sender
        agents = [market.agent] + ([market.random_agent] if isinstance(market, Market) else [])
        self._calls = [(a.address, a.functions.step()._encode_transaction_data()) for a in agents]

    def ready(self) -> bool:
        """Whether the agent would act now: its policy is published and fresh, and so is
        what its environment needs (a StockMarket's prices): its step, simulated, succeeds."""
        try:
            self.market.agent.functions.step().call({"from": self.sender})
        except Exception:  # FeedNeverUpdated, StaleFeed, StalePrice, …: not yet
            return False
        return True

    def act(self, steps: int = 1) -> list[HexBytes]:
        hashes = []
        for to, data in self._calls:
            for _ in range(steps):
                tx = {"from": self.sender, "to": to, "data": data, "gas": STEP_GAS}
                hashes.append(self.w3.eth.send_transaction(tx))  # type: ignore[arg-type]
        return hashes


def steps(agent: Contract, from_block: int, to_block: int | str = "latest") -> list[Any]:
    """The agent's Step events in order (each its pull in its own bandit: the agent is the
    bandit's only caller and acts once a step)."""
    logs = agent.events.Step().get_logs(from_block=from_block, to_block=to_block)
    return sorted(logs, key=lambda e: int(e["args"]["step"]))
