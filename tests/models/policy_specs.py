"""Policy feed specs for the tests: the example spec, with each allowlisted policy."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "sp500_bandit.toml"

_EPSILON = """[[model.steps]]
class = "bandit.EpsilonGreedy"
epsilon = 0.1
burn_in = 5
seed = 42

# an exponentially weighted mean follows a stock whose volatility changes over time
[model.steps.reward_obj]
class = "stats.EWMean"
fading_factor = 0.05
"""

POLICIES = {
    "epsilon_greedy": _EPSILON,
    "ucb": '[[model.steps]]\nclass = "bandit.UCB"\ndelta = 0.5\nseed = 3\n',
    "thompson": (
        '[[model.steps]]\nclass = "bandit.ThompsonSampling"\nburn_in = 2\nseed = 5\n'
        '[model.steps.reward_obj]\nclass = "proba.Gaussian"\n'
    ),
}


def policy_spec(directory: Path, policy: str) -> Path:
    """The example spec with the model of ``policy`` (a key of :data:`POLICIES`)."""
    text = EXAMPLE.read_text()
    assert _EPSILON in text
    path = directory / f"bandit_{policy}.toml"
    path.write_text(text.replace(_EPSILON, POLICIES[policy]))
    return path
