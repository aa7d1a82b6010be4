"""The RL loop on a live 4-node committee (each node a ``mira node run`` process, the DKG
over p2p): the committee publishes the prior, a GreedyPolicyAgent acts on whatever policy
is on-chain, the nodes learn its Step events and their reports carry the policy back.
Through ``mira bench rl``'s own code, so this is also the bench's plumbing with tiny
parameters (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.bench.rl import measure
from oracle.bench.rl_stocks import measure_stocks
from oracle.config import load_feed_spec
from oracle.devnet import rl
from oracle.models.quantize import quantizer
from oracle.sources.replay import load_rows

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(280)]


def test_100_steps_shift_the_agent_toward_the_best_arm(tmp_path: Path) -> None:
    # A stationary bandit, so the policy learns on the plain mean, two burn-in rounds of each
    # arm (8 draws). The bench's drift-following EWMean (fading 0.1) takes an arm's first
    # reward as its whole estimate: when the best arm's first draw is a 0 (1 time in 10) it
    # scores below the 0.5 arm, and 100 steps of epsilon 0.05 rarely undo that (the bench's
    # 2,000 steps do). That chance, not the loop, failed this test now and then.
    result = measure(100, 4, tmp_path, drift=False, policy={"fading": None, "burn_in": 2})
    arms = result["agent_arms"]
    best = rl.RATES_PPM.index(max(rl.RATES_PPM))
    assert result["steps"] == result["random_steps"] == 100  # no step refused or lost
    # uniformly random takes the best arm 1 time in 5 (10 of 50); the prior recommends
    # arm 0. The bar is twice random's: on a loaded machine the policy lags several blocks
    # and the agent holds an exploring recommendation that long (the bench measures it)
    assert arms[:8].count(best) <= 4, arms
    assert arms[-50:].count(best) >= 20, arms
    assert arms[-50:].count(best) / 50 > arms[:20].count(best) / 20, arms
    assert result["regret_agent"] < result["regret_random"]
    assert result["loop_latency_samples"] > 0  # policies that learned the steps landed
    assert result["gas_per_agent_step_median"] > 0
    assert result["recovery_steps"] is None  # no drift here


def test_the_stock_market_loop_on_a_live_committee(tmp_path: Path) -> None:
    """The real-data market: the committee replays SP500Stocks as ten rebased price feeds
    and publishes the stock policy; the agent holds a stock a block and is paid its
    realised return between two attested prices; every member learns every step."""
    steps = 40
    result = measure_stocks(steps, tmp_path)
    assert result["reverted"] == 0  # no step refused (stale prices, a torn policy, …)
    assert result["paid_steps"] == steps - 1
    # every price the market traded at is a day's rebased close as the replay computes it
    spec = load_feed_spec(rl.price_spec_path())
    rows = load_rows(spec.sources[0])  # type: ignore[arg-type]
    q = quantizer(spec.decimals, spec.rounding)
    days = {t: {q(row[t]): i for i, row in enumerate(rows)} for t in rl.TICKERS}
    for arm, entry, exit_, reward in result["holdings"]:
        ticker = rl.TICKERS[arm]
        assert entry in days[ticker] and exit_ in days[ticker], (ticker, entry, exit_)
        assert days[ticker][exit_] >= days[ticker][entry]  # held forward in time
        assert reward == rl.realised(entry, exit_)
    # the prices advanced through the run (how often a holding sees a new trading day
    # depends on how fast the committee reports: the bench measures that, not this test)
    assert any(entry != exit_ for _, entry, exit_, _ in result["holdings"])
    # every member learned every paid step, the same counts per arm, nothing rejected
    learned = result["learned"]
    assert all(counts == learned[0] for counts in learned)
    taken = [rl.TICKERS[h[0]] for h in result["holdings"]]
    assert learned[0] == {t: taken.count(t) for t in rl.TICKERS}
    assert result["rejections"] == [{}] * 4
    assert result["price_rejections"] == {}
    assert result["best_fixed_stock"] in rl.TICKERS
