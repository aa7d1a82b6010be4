"""A contextual bandit policy for attested feeds: one river ``LinearRegression`` per arm,
learning the arm's reward from the context features, with a seeded epsilon-greedy
exploration rule.

Why not river's ``bandit.LinUCBDisjoint``: it inverts a matrix per arm with numpy (BLAS),
whose last bits differ across CPUs, and committee members must publish bit-identical
policies. ``LinearRegression`` with SGD is pure Python: the same records in the same order
give the same floats on every machine. Exploration draws from its own
``random.Random(seed)``, once per recommendation, so it is a function of the records too.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from river import linear_model, optim


class ContextualLinear:
    """Per arm, a linear model of the reward given the context; recommends the arm with the
    highest predicted reward, or with probability ``epsilon`` a uniformly drawn one.

    ``burn_in``: every arm is recommended (in arm order) until it has learned that many
    rewards, so that each model sees data before it is compared."""

    def __init__(
        self,
        arms: Sequence[str],
        *,
        epsilon: float,
        seed: int,
        lr: float = 0.01,
        l2: float = 0.0,
        burn_in: int = 0,
    ) -> None:
        self.arms = tuple(arms)
        self.epsilon = epsilon
        self.burn_in = burn_in
        self.models = {
            arm: linear_model.LinearRegression(optimizer=optim.SGD(lr), l2=l2, intercept_lr=lr)
            for arm in self.arms
        }
        self.counts = dict.fromkeys(self.arms, 0)
        # exploration, not secrecy: seeded so that every member draws the same arms
        self.rng = random.Random(seed)  # noqa: S311

    def learn(self, arm: str, context: dict[str, float], reward: float) -> None:
        """The agent took ``arm`` in ``context`` (features in sorted key order) and was paid
        ``reward``: only that arm's model learns (bandit feedback)."""
        self.models[arm].learn_one(context, reward)
        self.counts[arm] += 1

    def score(self, arm: str, context: dict[str, float]) -> float:
        """``arm``'s predicted reward in ``context``."""
        return float(self.models[arm].predict_one(context))  # type: ignore[no-untyped-call]

    def recommend(self, context: dict[str, float]) -> str:
        """The arm to take in ``context``: burn-in first, then epsilon-greedy (seeded)."""
        for arm in self.arms:
            if self.counts[arm] < self.burn_in:
                return arm
        if self.epsilon and self.rng.random() < self.epsilon:
            return self.arms[self.rng.randrange(len(self.arms))]
        scores = [self.score(a, context) for a in self.arms]
        return self.arms[max(range(len(scores)), key=scores.__getitem__)]
