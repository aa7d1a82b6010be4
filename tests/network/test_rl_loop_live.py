"""The RL loop on a live 4-node committee (each node a ``mira node run`` process, the DKG
over p2p): the committee publishes the prior, a GreedyPolicyAgent acts on whatever policy
is on-chain, the nodes learn its Step events and their reports carry the policy back.
Through ``mira bench rl``'s own code, so this is also the bench's plumbing with tiny
parameters (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.bench.rl import measure
from oracle.devnet import rl

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(280)]


def test_100_steps_shift_the_agent_toward_the_best_arm(tmp_path: Path) -> None:
    result = measure(100, 4, tmp_path, drift=False)
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
