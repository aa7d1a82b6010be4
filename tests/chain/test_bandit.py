"""The RL loop's scoreboard (oracle.chain.bandit): DriftingBandit's schedule, the regret of
a sequence of pulls, and the fold of paid pulls the loop view serves, bounded in memory."""

from __future__ import annotations

from oracle.chain.bandit import PPM, RECENT, REWARD_ONE, Schedule, Scoreboard

RATES = (100_000, 200_000, 300_000, 500_000, 900_000)


def test_the_schedule_rotates_before_pull_drift_every_plus_one() -> None:
    s = Schedule(RATES, 3)
    assert [s.rate(p, 4) for p in (1, 3)] == [900_000, 900_000]
    assert s.rate(4, 4) == 100_000 and s.rate(4, 3) == 900_000  # the old second best leads
    assert [s.best_arm(p) for p in (1, 3, 4, 6, 7)] == [4, 4, 3, 3, 2]
    assert Schedule(RATES, 0).best_arm(10**6) == 4  # no drift


def test_a_schedule_read_now_is_the_deployed_one() -> None:
    deployed = Schedule(RATES, 300)
    for shift in (0, 1, 4, 7):
        now = [RATES[(a + shift) % 5] for a in range(5)]  # rateOf(a) at that rotation
        assert Schedule.from_current(now, shift, 300) == deployed


def test_regret_of_the_best_arm_is_zero_and_of_others_the_gap() -> None:
    s = Schedule(RATES, 0)
    assert s.regret([4] * 10) == 0
    assert s.regret([0, 4]) == (900_000 - 100_000) / PPM
    assert s.best_fixed_regret(10) == (4, 0.0)
    drifting = Schedule(RATES, 5)  # arm 3 is best for pulls 6..10: over 10 pulls arm 4 or 3
    arm, regret = drifting.best_fixed_regret(10)
    assert arm == 3 and regret == drifting.regret([3] * 10) > 0


def test_the_scoreboard_folds_pulls_into_rewards_regret_and_choices() -> None:
    s = Schedule(RATES, 2)
    board = Scoreboard(s)
    taken = [4, 4, 4, 3, 0]
    for pull, arm in enumerate(taken, start=1):
        assert board.add(pull, arm, REWARD_ONE if arm >= 3 else 0)
    out = board.summary()
    assert out["steps"] == 5 and out["reward"] == 4.0
    assert out["pulls"] == [1, 0, 0, 1, 3] and out["last_arm"] == 0
    best = sum(s.rate(p, s.best_arm(p)) for p in range(1, 6)) / PPM
    assert out["best_arm_reward"] == best
    assert out["regret"] == s.regret(taken)  # the same computation as the bench's
    assert out["best_fixed_arm"] == s.best_fixed_regret(5)[0]
    assert out["series"][-1] == {
        "step": 5,
        "reward": 4.0,
        "best_arm_reward": best,
        "regret": s.regret(taken),
    }
    assert out["recent_arms"] == [[i + 1, a] for i, a in enumerate(taken)]


def test_repeats_and_unknown_arms_are_ignored_and_counted() -> None:
    board = Scoreboard(Schedule(RATES, 0))
    assert board.add(1, 4, REWARD_ONE)
    assert not board.add(1, 4, REWARD_ONE)  # the same pull again (a log read twice)
    assert not board.add(2, 5, REWARD_ONE)  # no arm 5 of five
    assert not board.add(3, -1, 0)
    assert board.summary()["steps"] == 1 and board.ignored == 3
    # without a schedule: rewards and choices only
    blind = Scoreboard(None)
    assert blind.add(7, 2, 5)
    out = blind.summary()
    assert out["first_pull"] == 7 and out["pulls"] == [0, 0, 1] and "regret" not in out


def test_memory_is_bounded_whatever_the_number_of_pulls() -> None:
    board = Scoreboard(Schedule(RATES, 300), max_points=50)
    for pull in range(1, 20_001):
        board.add(pull, pull % 5, REWARD_ONE * (pull % 2))
    out = board.summary()
    assert len(board.points) <= 50 and len(out["series"]) <= 51
    assert out["series"][-1]["step"] == 20_000 and out["reward"] == 10_000.0
    steps = [p["step"] for p in out["series"]]
    assert steps == sorted(steps) and steps[0] < 1000  # the whole run, coarser
    assert len(out["recent_arms"]) == RECENT
