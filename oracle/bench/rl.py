"""The RL loop closed on a live committee: ``mira bench rl``.

A 4-node committee (each node a ``mira node run`` process, oracle.devnet.localnet) on anvil
with 1 s blocks learns a K-armed DriftingBandit's policy from its GreedyPolicyAgent's Step
events (oracle.devnet.rl); a RandomAgent acts in a twin bandit. The harness makes both
agents act ``steps_per_block`` times each block, on whatever policy is on-chain then (the
agent never waits for the loop: the policy's lag is part of what is measured), and polls
the policy every 20 ms to time the loop: a block's steps → a policy observed at that
block's time or later readable on-chain (a node learns a block's logs in one poll, so such
a policy learned all of them).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from hexbytes import HexBytes

from oracle.bench.e2e import _percentile
from oracle.bench.rl_committee import BLOCK_TIME_S, CONFIRMATIONS, NODES, SETTINGS, start
from oracle.bench.rl_stocks import measure_stocks
from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.chain.deploy import deploy
from oracle.devnet import rl
from oracle.devnet.localnet import LocalNet
from oracle.devnet.processes import NodeProc
from oracle.progress import Progress, no_progress, stderr_progress

WINDOW = 50  # recovery: the new best arm taken in more than half of the last WINDOW steps
BAR_REGRET_FRACTION = 0.15
BAR_RECOVERY_STEPS = 150
BAR_LATENCY_P50_S = 3.0
BAR_WALL_S = 15 * 60
POLL_S = 0.02


class RLNet(LocalNet):
    """The localnet serving the RL policy feed instead of the launcher's price feed."""

    def __init__(
        self, *args: Any, drift_every: int, policy: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.drift_every = drift_every
        self.policy = policy or {}  # rl.spec_text's policy options (epsilon, fading, burn_in)
        self.market: rl.Market | None = None

    def setup(self) -> None:
        oracle = deploy(self.w3, "MiraOracle", self.w3.eth.accounts[0], 3600, 86400, 3600, 300)
        self.oracle = oracle
        for fid, fid32 in rl.policy_feeds():
            self._wait(oracle.functions.registerFeed(fid32, 8, fid, rl.HISTORY_DEPTH).transact())
        self.market = rl.deploy_market(
            self.w3,
            oracle.address,
            lambda name, *args: deploy(self.w3, name, *args),
            self._send,
            drift_every=self.drift_every,
        )
        super().setup_committee()

    def write_config(self, node: NodeProc, **kwargs: Any) -> None:
        super().write_config(node, **kwargs)
        assert self.market is not None
        feeds = node.dir / "feeds"
        (feeds / "eth_usd.toml").unlink()  # this committee serves the policy alone
        text = rl.spec_text(
            self.rpc_url,
            self.market.agent.address,
            self.market.from_block,
            confirmations=CONFIRMATIONS,
            poll_s=0.1,
            **self.policy,
        )
        (feeds / "rl_bandit.toml").write_text(text)


def recovery(arms: list[int], change: int, new_best: int) -> int | None:
    """Steps after ``change`` (the last step before the drift) until the new best arm is
    taken in more than half of the last WINDOW steps; None if it never is."""
    for t in range(change + 1, len(arms) + 1):
        window = arms[max(0, t - WINDOW) : t]
        if sum(a == new_best for a in window) * 2 > WINDOW:
            return t - change
    return None


def measure(
    steps: int,
    steps_per_block: int,
    root: Path,
    progress: Progress = no_progress,
    *,
    drift: bool = True,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run; ``drift=False``: the best arm never changes (the results then also hold
    ``agent_arms``, every arm the agent took); ``policy``: the policy spec's options
    (rl.spec_text) instead of the bench's."""
    change = steps // 2 if drift else 0
    started_wall = time.monotonic()
    with Anvil(AnvilConfig(block_time=BLOCK_TIME_S, accounts=NODES + 2)) as anvil:
        net = RLNet(
            root,
            anvil.url,
            anvil.private_keys,
            NODES,
            **SETTINGS,
            drift_every=change,
            policy=policy,
        )
        try:
            start(net, progress)
            market = net.market
            assert market is not None and net.oracle is not None
            w3 = net.w3
            actor = rl.Actor(w3, market, w3.eth.accounts[NODES + 1])
            progress("the committee publishes the prior policy")
            net.until(actor.ready, 60, "the prior policy on-chain")
            rec_id = rl.policy_feeds()[-1][1]
            latest = net.oracle.functions.latestRound
            seen_block: dict[int, float] = {}  # block → when the harness first saw it
            block_time: dict[int, int] = {}  # block → its timestamp
            readable: list[tuple[int, float]] = []  # (policy observedAt, first seen)
            last_observed = -1
            sent = 0
            hashes: list[HexBytes] = []
            deadline = time.monotonic() + steps / steps_per_block * BLOCK_TIME_S * 3 + 120
            last_block = int(w3.eth.block_number)
            target: int | None = None  # the last steps' block time, once all are sent
            while target is None or last_observed < target:
                now = time.monotonic()
                if now > deadline:
                    raise click.ClickException(
                        f"the loop stalled after {sent} steps; node 0's log ends:\n"
                        + net.log_tail(0)
                    )
                block = int(w3.eth.block_number)
                if block > last_block:
                    for b in range(last_block + 1, block + 1):
                        seen_block[b] = now
                    last_block = block
                    if sent < steps:
                        n = min(steps_per_block, steps - sent)
                        hashes += actor.act(n)
                        sent += n
                        progress("agents acting on the on-chain policy", sent, steps)
                _, _, observed = latest(rec_id).call()
                if int(observed) > last_observed:
                    last_observed = int(observed)
                    readable.append((last_observed, time.monotonic()))
                if sent >= steps and target is None:
                    last = w3.eth.wait_for_transaction_receipt(hashes[-1], timeout=60)
                    target = int(w3.eth.get_block(last["blockNumber"])["timestamp"])
                    progress("waiting for the policy that learned the last step")
                time.sleep(POLL_S)
            for h in hashes:
                r = w3.eth.get_transaction_receipt(h)
                if r["status"] != 1:
                    raise click.ClickException(f"a step reverted: {h.hex()}")
                b = int(r["blockNumber"])
                if b not in block_time:
                    block_time[b] = int(w3.eth.get_block(b)["timestamp"])
            agent_steps = rl.steps(market.agent, market.from_block)
            random_steps = rl.steps(market.random_agent, market.from_block)
            gas = [
                int(w3.eth.get_transaction_receipt(e["transactionHash"])["gasUsed"])
                for e in agent_steps[:: max(1, len(agent_steps) // 200)]
            ]
        finally:
            net.stop()
    # loop latency per block holding steps: mined (first seen) → a policy observed at its
    # time or later first seen on-chain
    latencies = []
    for b, ts in sorted(block_time.items()):
        mined = seen_block.get(b)
        later = [at for observed, at in readable if observed >= ts]
        if mined is not None and later:
            latencies.append(later[0] - mined)
    arms = [int(e["args"]["arm"]) for e in agent_steps]
    random_arms = [int(e["args"]["arm"]) for e in random_steps]
    n = len(arms)
    schedule = market.schedule
    agent_regret = schedule.regret(arms)
    random_regret = schedule.regret(random_arms)
    fixed_arm, fixed_regret = schedule.best_fixed_regret(n)
    new_best = schedule.best_arm(change + 1)
    rec = recovery(arms, change, new_best) if drift else None
    fraction = agent_regret / random_regret if random_regret else None
    p50 = statistics.median(latencies) if latencies else None
    wall = time.monotonic() - started_wall
    extra = {} if drift else {"agent_arms": arms}
    return {
        **extra,
        "steps": n,
        "random_steps": len(random_arms),
        "arms": len(market.rates_ppm),
        "rates_ppm": list(market.rates_ppm),
        "change_after_step": change,
        "steps_per_block": steps_per_block,
        "regret_agent": round(agent_regret, 2),
        "regret_random": round(random_regret, 2),
        "regret_best_fixed_arm": round(fixed_regret, 2),
        "best_fixed_arm": fixed_arm,
        "regret_fraction_of_random": None if fraction is None else round(fraction, 4),
        "recovery_steps": rec,
        "new_best_arm": new_best,
        "agent_best_arm_share_last_100": round(
            sum(a == new_best for a in arms[-100:]) / max(1, len(arms[-100:])), 3
        ),
        "loop_latency_s_p50": None if p50 is None else round(p50, 3),
        "loop_latency_s_p99": round(_percentile(latencies, 0.99), 3) if latencies else None,
        "loop_latency_samples": len(latencies),
        "gas_per_agent_step_median": int(statistics.median(gas)) if gas else None,
        "wall_s": round(wall, 1),
        "bars": {
            "regret_fraction_max": BAR_REGRET_FRACTION,
            "recovery_steps_max": BAR_RECOVERY_STEPS,
            "loop_latency_p50_max_s": BAR_LATENCY_P50_S,
            "wall_max_s": BAR_WALL_S,
            "regret_pass": fraction is not None and fraction <= BAR_REGRET_FRACTION,
            "recovery_pass": rec is not None and rec <= BAR_RECOVERY_STEPS,
            "latency_pass": p50 is not None and p50 <= BAR_LATENCY_P50_S,
            "wall_pass": wall <= BAR_WALL_S,
        },
    }


def run(
    steps: int, steps_per_block: int, progress: Progress = no_progress, *, stock_steps: int = 0
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mira-rl-") as tmp:
        result = measure(steps, steps_per_block, Path(tmp), progress)
    stocks = None
    if stock_steps:
        with tempfile.TemporaryDirectory(prefix="mira-rl-stocks-") as tmp:
            stocks = measure_stocks(stock_steps, Path(tmp), progress)
        del stocks["holdings"]  # every step's prices: the test's, too long to print
    return {
        "benchmark": "rl",
        "block_time_s": BLOCK_TIME_S,
        "confirmations": CONFIRMATIONS,
        "nodes": NODES,
        "setup": "each node a separate process; a GreedyPolicyAgent in a DriftingBandit acts "
        "on the committee's policy (epsilon-greedy on an EWMean, learned from its Step events); "
        "a RandomAgent in a twin bandit; regret is pseudo-regret (rates, not the paid draws); "
        "the real-data (SP500) market runs with --stock-steps (oracle/bench/rl_stocks.py)",
        "results": result,
        **({} if stocks is None else {"stocks": stocks}),
    }


@click.command("rl")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--steps", default=2000, show_default=True, help="Agent steps (the drift at half).")
@click.option(
    "--steps-per-block", default=4, show_default=True, help="Steps of each agent per block."
)
@click.option(
    "--stock-steps",
    default=0,
    show_default=True,
    help="Then the real-data market (SP500Stocks price feeds, a StockMarket) for this many "
    "steps, one a block: realised regret against the best fixed stock in hindsight.",
)
def rl_command(as_json: bool, steps: int, steps_per_block: int, stock_steps: int) -> None:
    """The RL loop on a 4-node committee: regret, recovery, loop latency, gas."""
    import json

    if steps < 2 or steps_per_block < 1:
        raise click.UsageError("--steps must be at least 2 and --steps-per-block at least 1")
    if stock_steps and not 3 <= stock_steps <= 1200:
        raise click.UsageError("--stock-steps must be 0 or in [3, 1200] (1,257 trading days)")
    with stderr_progress("mira bench rl") as progress:
        result = run(steps, steps_per_block, progress, stock_steps=stock_steps)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    r, b = result["results"], result["results"]["bars"]
    click.echo(
        f"{r['steps']} steps, K = {r['arms']}, drift after step {r['change_after_step']}: "
        f"regret agent {r['regret_agent']}, random {r['regret_random']}, best fixed arm "
        f"{r['regret_best_fixed_arm']} ({r['regret_fraction_of_random']} of random's)"
    )
    click.echo(
        f"recovery {r['recovery_steps']} steps; loop latency p50 {r['loop_latency_s_p50']} s, "
        f"p99 {r['loop_latency_s_p99']} s; {r['gas_per_agent_step_median']} gas/step; "
        f"{r['wall_s']} s"
    )
    click.echo(
        f"bars: regret ≤ {b['regret_fraction_max']:.0%} of random's "
        f"{'PASS' if b['regret_pass'] else 'FAIL'}; recovery ≤ {b['recovery_steps_max']} "
        f"{'PASS' if b['recovery_pass'] else 'FAIL'}; latency p50 ≤ "
        f"{b['loop_latency_p50_max_s']} s "
        f"{'PASS' if b['latency_pass'] else 'FAIL'}; wall ≤ {b['wall_max_s']} s "
        f"{'PASS' if b['wall_pass'] else 'FAIL'}"
    )
    if "stocks" in result:
        s = result["stocks"]
        click.echo(
            f"stocks: {s['paid_steps']} holdings paid; realised return agent "
            f"{s['agent_return']:.4f}, random {s['random_return']:.4f}, best fixed stock "
            f"{s['best_fixed_stock']} {s['best_fixed_return']:.4f}; regret agent "
            f"{s['regret_agent']}, random {s['regret_random']} "
            f"({s['regret_fraction_of_random']} of random's); {s['wall_s']} s"
        )
