"""The RL loop's scoreboard: what an agent's paid pulls add up to, against the best arm.

One computation for every place that shows the loop: the node's learning-loop view
(``GET /v1/loop``, oracle.node.loop_view, which the dashboard and the devnet's terminal view
read) and ``mira bench rl``.

:class:`Schedule` is DriftingBandit's rate schedule (contracts/src/rl/DriftingBandit.sol):
arm ``a`` pays with rate ``rates_ppm[(a + shift) % K]`` at pull ``p``, where
``shift = (p - 1) // drift_every`` (the rates rotate by one before pull ``drift_every + 1``,
``2·drift_every + 1``, …). Regret here is pseudo-regret: per pull, the best arm's rate minus
the taken arm's rate, so it measures the choices, not the coin flips that paid them.

:class:`Scoreboard` folds one agent's pulls ``(pull, arm, reward)`` — the environment's
``RewardPaid`` events — into its cumulative reward, its arm choices and, where the schedule
is known, the expected reward of the best arm at each pull (the best arm in hindsight, pull
by pull), of each single arm held throughout, and the pseudo-regret. Its memory is bounded
whatever the number of pulls: the series over time keeps at most ``max_points`` points
(halving its resolution when full) and the recent choices a fixed window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PPM = 1_000_000
REWARD_ONE = 10**8  # IMiraEnvironment: rewards are fixed point with 8 decimals
MAX_ARMS = 64  # a schedule or an event naming more arms is not a bandit this view shows
MAX_POINTS = 240  # points of a series over time (per agent)
RECENT = 100  # the latest arm choices kept


@dataclass(frozen=True)
class Schedule:
    """DriftingBandit's rates (ppm) at deployment and its drift period (0: no drift)."""

    rates_ppm: tuple[int, ...]
    drift_every: int

    def rate(self, pull: int, arm: int) -> int:
        """The rate (ppm) ``arm`` pays at ``pull`` (1-based)."""
        k = len(self.rates_ppm)
        shift = (pull - 1) // self.drift_every if self.drift_every else 0
        return self.rates_ppm[(arm + shift) % k]

    def best_arm(self, pull: int) -> int:
        """The arm with the highest rate at ``pull`` (the first of equals, as bestArm())."""
        rates = [self.rate(pull, a) for a in range(len(self.rates_ppm))]
        return rates.index(max(rates))

    def regret(self, arms: Sequence[int]) -> float:
        """Cumulative pseudo-regret (in rewards of 1.0) of taking ``arms`` at pulls 1, 2, …"""
        total = 0
        for pull, arm in enumerate(arms, start=1):
            total += self.rate(pull, self.best_arm(pull)) - self.rate(pull, arm)
        return total / PPM

    def best_fixed_regret(self, n: int) -> tuple[int, float]:
        """The best single arm in hindsight over ``n`` pulls, and its regret."""
        regrets = [self.regret([a] * n) for a in range(len(self.rates_ppm))]
        best = regrets.index(min(regrets))
        return best, regrets[best]

    @classmethod
    def from_current(cls, current_ppm: Sequence[int], shift: int, drift_every: int) -> Schedule:
        """The schedule of a bandit read now: ``current_ppm[a]`` is ``rateOf(a)`` at rotation
        ``shift``, i.e. ``rates_ppm[(a + shift) % K]``."""
        k = len(current_ppm)
        rates = [0] * k
        for a, r in enumerate(current_ppm):
            rates[(a + shift) % k] = int(r)
        return cls(tuple(rates), drift_every)


@dataclass
class Scoreboard:
    """One agent's pulls so far; ``schedule`` None: an environment whose rates are unknown
    (only the rewards and choices are shown then)."""

    schedule: Schedule | None
    max_points: int = MAX_POINTS
    first_pull: int | None = None
    last_pull: int = 0
    steps: int = 0
    reward: int = 0  # Σ rewards, fixed point (REWARD_ONE)
    pulls: list[int] = field(default_factory=list)  # per arm
    last_arm: int | None = None
    best_ppm: int = 0  # Σ the best arm's rate at each pull
    taken_ppm: int = 0  # Σ the taken arm's rate
    arm_ppm: list[int] = field(default_factory=list)  # Σ each arm's rate, as if always held
    ignored: int = 0  # pulls out of order (a repeat) or naming no arm of the schedule
    points: list[dict[str, Any]] = field(default_factory=list)
    stride: int = 1
    recent: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RECENT))

    def __post_init__(self) -> None:
        k = len(self.schedule.rates_ppm) if self.schedule is not None else 0
        self.pulls = [0] * k
        self.arm_ppm = [0] * k

    def add(self, pull: int, arm: int, reward: int) -> bool:
        """Fold one paid pull in; False (and counted in ``ignored``) if it repeats an earlier
        pull or names an arm out of range."""
        k = len(self.pulls) if self.schedule is not None else MAX_ARMS
        if pull <= self.last_pull or not 0 <= arm < k:
            self.ignored += 1
            return False
        if self.first_pull is None:
            self.first_pull = pull
        if arm >= len(self.pulls):
            self.pulls += [0] * (arm + 1 - len(self.pulls))
        self.last_pull, self.last_arm = pull, arm
        self.steps += 1
        self.reward += reward
        self.pulls[arm] += 1
        s = self.schedule
        if s is not None:
            best = s.rate(pull, s.best_arm(pull))
            self.best_ppm += best
            self.taken_ppm += s.rate(pull, arm)
            for a in range(len(self.arm_ppm)):
                self.arm_ppm[a] += s.rate(pull, a)
        self.recent.append((self.steps, arm))
        if self.steps % self.stride == 0:
            self.points.append(self.point())
            if len(self.points) > self.max_points:  # halve the resolution: memory stays bounded
                self.points = self.points[1::2]
                self.stride *= 2
        return True

    def point(self) -> dict[str, Any]:
        """Where the agent stands now: its step, cumulative reward and, with a schedule, the
        best arm's expected cumulative reward and the pseudo-regret (rewards of 1.0)."""
        out: dict[str, Any] = {"step": self.steps, "reward": self.reward / REWARD_ONE}
        if self.schedule is not None:
            out["best_arm_reward"] = self.best_ppm / PPM
            out["regret"] = (self.best_ppm - self.taken_ppm) / PPM
        return out

    def summary(self) -> dict[str, Any]:
        """The JSON the loop view serves for this agent."""
        out: dict[str, Any] = {
            "steps": self.steps,
            "first_pull": self.first_pull,
            "last_pull": self.last_pull or None,
            "reward": self.reward / REWARD_ONE,
            "pulls": list(self.pulls),
            "last_arm": self.last_arm,
            "ignored": self.ignored,
            "recent_arms": [list(x) for x in self.recent],
        }
        series = list(self.points)
        if self.steps and (not series or series[-1]["step"] != self.steps):
            series.append(self.point())
        out["series"] = series
        s = self.schedule
        if s is not None:
            fixed = max(range(len(self.arm_ppm)), key=lambda a: (self.arm_ppm[a], -a))
            out |= {
                "best_arm_reward": self.best_ppm / PPM,
                "expected_reward": self.taken_ppm / PPM,
                "regret": (self.best_ppm - self.taken_ppm) / PPM,
                "best_fixed_arm": fixed,
                "best_fixed_arm_reward": self.arm_ppm[fixed] / PPM if self.arm_ppm else 0.0,
                "best_arm_now": s.best_arm(self.last_pull) if self.last_pull else None,
            }
        return out
