"""The RL loop's real-data market on a live committee.

A 4-node committee (each node a ``mira node run`` process) on anvil with 1 s blocks serves
two specs: the ten SP500Stocks price feeds (``feeds/rl/sp500_prices.toml``: each stock's
close rebased to 100, replayed in real time, one trading day per second from the set-up)
and the policy ``RL/stocks``, learned from the Step events of a GreedyPolicyAgent that
holds one stock per step in a StockMarket, paid the realised return between the two
attested prices. It acts once a block, on whatever is on-chain then.

Regret here is realised, not pseudo: a stock's return over a step is only known once it is
over. Each ticker's return over each of the agent's holdings is computed from its price at
the end of each step's block (a price update landing in a step's block after the step moves
that holding's price by one update; the result counts the agent's holdings where that
happened, ``holdings_off_block_end``). The best fixed stock in hindsight is the one whose
returns sum highest; uniformly random play's is the expected one, the mean over the tickers
each holding (a RandomAgent serves immediate environments only, and a StockMarket pays a
step late; the expectation is also free of one sample's luck).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import click
from hexbytes import HexBytes

from oracle.bench.rl_committee import BLOCK_TIME_S, CONFIRMATIONS, NODES, SETTINGS, start
from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.chain.deploy import deploy
from oracle.devnet import rl
from oracle.devnet.localnet import LocalNet
from oracle.devnet.processes import NodeProc
from oracle.progress import Progress, no_progress

POLL_S = 0.05


class StockNet(LocalNet):
    """The localnet serving the price feeds and the stock policy instead of the launcher's
    price feed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stocks: rl.StockLoop | None = None
        self.prices_start_ms = 0

    def setup(self) -> None:
        oracle = deploy(self.w3, "MiraOracle", self.w3.eth.accounts[0], 3600, 86400, 3600, 300)
        self.oracle = oracle
        for fid, fid32 in [*rl.price_feeds(), *rl.policy_feeds(rl.STOCK_FEED, rl.TICKERS)]:
            self._wait(oracle.functions.registerFeed(fid32, 8, fid, rl.HISTORY_DEPTH).transact())
        self.stocks = rl.deploy_stock_market(
            self.w3, oracle.address, lambda name, *args: deploy(self.w3, name, *args), self._send
        )
        # the same clock in every member's spec: trading day i is released at start + i s
        self.prices_start_ms = int(time.time() * 1000)
        super().setup_committee()

    def write_config(self, node: NodeProc, **kwargs: Any) -> None:
        super().write_config(node, **kwargs)
        assert self.stocks is not None
        feeds = node.dir / "feeds"
        (feeds / "eth_usd.toml").unlink()  # this committee serves the market alone
        prices = rl.price_spec_text(self.prices_start_ms, realtime=True)
        (feeds / "sp500_prices.toml").write_text(prices)
        policy = rl.stock_spec_text(
            self.rpc_url,
            self.stocks.agent.address,
            self.stocks.from_block,
            confirmations=CONFIRMATIONS,
            poll_s=0.1,
        )
        (feeds / "rl_stocks.toml").write_text(policy)


def measure_stocks(steps: int, root: Path, progress: Progress = no_progress) -> dict[str, Any]:
    """One run of ``steps`` agent steps, one a block."""
    started = time.monotonic()
    with Anvil(AnvilConfig(block_time=BLOCK_TIME_S, accounts=NODES + 2)) as anvil:
        net = StockNet(root, anvil.url, anvil.private_keys, NODES, **SETTINGS)
        try:
            start(net, progress)
            stocks, oracle, w3 = net.stocks, net.oracle, net.w3
            assert stocks is not None and oracle is not None
            actor = rl.Actor(w3, stocks, w3.eth.accounts[NODES + 1])
            progress("the committee publishes the prices and the prior policy")
            net.until(actor.ready, 120, "the prices and the prior policy on-chain")
            hashes: list[HexBytes] = []
            last_block = int(w3.eth.block_number)
            deadline = time.monotonic() + steps * BLOCK_TIME_S * 3 + 120
            while len(hashes) < steps:
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"the loop stalled after {len(hashes)} steps; node 0's log ends:\n"
                        + net.log_tail(0)
                    )
                block = int(w3.eth.block_number)
                if block > last_block:
                    last_block = block
                    hashes += actor.act(1)
                    progress("the agent holding stocks on the on-chain policy", len(hashes), steps)
                time.sleep(POLL_S)
            receipts = [w3.eth.wait_for_transaction_receipt(h, timeout=60) for h in hashes]
            reverted = sum(int(r["status"]) != 1 for r in receipts)
            step_blocks = [int(r["blockNumber"]) for r in receipts]
            last_ts = int(w3.eth.get_block(step_blocks[-1])["timestamp"])
            rec_id = rl.policy_feeds(rl.STOCK_FEED, rl.TICKERS)[-1][1]
            latest = oracle.functions.latestRound
            progress("waiting for the policy that learned the last step")
            net.until(
                lambda: int(latest(rec_id).call()[2]) >= last_ts, 90, "the policy of the last step"
            )
            agent_steps = rl.steps(stocks.agent, stocks.from_block)

            def learned_by_all() -> bool:
                """Every member reports a policy that learned every step (pulls per arm)."""
                learned[:] = [
                    net.loop.run(net._get(f"{n.api}/v1/feeds/{rl.STOCK_FEED}"), timeout=10)
                    for n in net.nodes
                ]
                return all(
                    s is not None and sum(s["metrics"]["pulls"].values()) == len(agent_steps)
                    for s in learned
                )

            learned: list[dict[str, Any] | None] = []
            net.until(learned_by_all, 60, "every member's policy to learn every step")
            prices_status = net.loop.run(
                net._get(f"{net.nodes[0].api}/v1/feeds/{rl.PRICE_FEED}"), timeout=10
            )
            paid = stocks.market.events.ReturnRealised().get_logs(from_block=stocks.from_block)
            price_ids = [f for _, f in rl.price_feeds(stocks.tickers)]
            at_block = {
                b: [int(latest(f).call(block_identifier=b)[1]) for f in price_ids]
                for b in sorted(set(step_blocks))
            }
            gas = [int(r["gasUsed"]) for r in receipts]
        finally:
            net.stop()
    paid_by_pull = {int(e["args"]["pull"]): e["args"] for e in paid}
    holdings = []  # (arm, entry, exit, reward) per agent step that was paid
    for e in agent_steps:
        args = e["args"]
        p = paid_by_pull.get(int(args["step"]))
        entry, exit_ = (None, None) if p is None else (int(p["entry"]), int(p["exit"]))
        holdings.append((int(args["arm"]), entry, exit_, int(args["reward"])))
    k = len(stocks.tickers)
    # each ticker's realised return over each of the agent's holdings (step i → step i + 1)
    returns = [
        [
            rl.realised(at_block[step_blocks[i]][t], at_block[step_blocks[i + 1]][t])
            for t in range(k)
        ]
        for i in range(len(holdings))
    ]
    fixed = [sum(r[t] for r in returns) for t in range(k)]
    off = sum(
        (entry, exit_) != (at_block[step_blocks[i]][arm], at_block[step_blocks[i + 1]][arm])
        for i, (arm, entry, exit_, _) in enumerate(holdings)
    )
    best = max(range(k), key=fixed.__getitem__)
    agent_total = sum(h[3] for h in holdings)
    random_total = sum(sum(r) for r in returns) / k  # uniform play's expected return
    regret_agent = (fixed[best] - agent_total) / rl.E8
    regret_random = (fixed[best] - random_total) / rl.E8
    return {
        "steps": steps,
        "paid_steps": len(holdings),
        "reverted": reverted,
        "tickers": list(stocks.tickers),
        "holdings": holdings,
        "agent_return": agent_total / rl.E8,
        "random_return": random_total / rl.E8,
        "best_fixed_stock": stocks.tickers[best],
        "best_fixed_return": fixed[best] / rl.E8,
        "regret_agent": round(regret_agent, 6),
        "regret_random": round(regret_random, 6),
        "regret_fraction_of_random": (
            round(regret_agent / regret_random, 4) if regret_random > 0 else None
        ),
        "holdings_off_block_end": off,
        "learned": [None if s is None else s.get("metrics", {}).get("pulls") for s in learned],
        "rejections": [None if s is None else s.get("rejections") for s in learned],
        "price_rejections": None if prices_status is None else prices_status.get("rejections"),
        "gas_per_agent_step_median": int(statistics.median(gas)) if gas else None,
        "wall_s": round(time.monotonic() - started, 1),
    }
