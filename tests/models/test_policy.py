"""Policy feeds: a seeded river bandit, bandit feedback, one quantized score per arm."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from river import bandit, proba, stats

from oracle.config import load_feed_spec
from oracle.config.feeds import ConfigError, FeedSpec
from oracle.models import FeedModel, Rejected, quantize
from oracle.sources.replay import ReplaySource
from tests.models.policy_specs import EXAMPLE, POLICIES, policy_spec

SPEC = load_feed_spec(EXAMPLE)


def records(spec: FeedSpec, n: int) -> list[tuple[dict[str, float], int]]:
    src = ReplaySource(spec.sources[0])  # type: ignore[arg-type]
    fields = spec.features.record_fields
    return [({k: float(o.raw[k]) for k in fields}, o.observed_at_ms) for o in src.read(0, n)]


def outputs(model: FeedModel, rows: list[tuple[dict[str, float], int]]) -> list[tuple]:  # type: ignore[type-arg]
    out = []
    for record, at in rows:
        o = model.step(record, at)
        assert o is not None
        out.append((o.seq, o.value, o.commitment, o.publish, o.arms, model.state.last_pulled))
    return out


def test_scores_are_the_estimates_of_a_river_policy_fed_bandit_feedback() -> None:
    """The same seeded river policy, driven by hand: pull, learn only the pulled arm's
    reward. Every arm's score is that arm's estimate, quantized once."""
    model = FeedModel(SPEC)
    reference = bandit.EpsilonGreedy(
        epsilon=0.1, burn_in=5, seed=42, reward_obj=stats.EWMean(fading_factor=0.05)
    )
    arms = list(SPEC.arms)
    pulled = set()
    for record, at in records(SPEC, 400):
        out = model.step(record, at)
        arm = reference.pull(arms)
        reference.update(arm, -abs(record[arm]))  # reward_transform = "negative_abs"
        pulled.add(arm)
        assert out is not None and model.state.last_pulled == arm
        assert [a.arm for a in out.arms] == arms
        for a in out.arms:
            expected = reference._rewards[a.arm].get() if a.arm in reference._rewards else 0.0
            assert a.raw_value == expected
            assert a.value == quantize(expected, SPEC.decimals, SPEC.rounding)
        best = max(out.arms, key=lambda a: a.raw_value)
        assert (out.raw_value, out.value) == (best.raw_value, best.value)
    assert pulled == set(arms)  # it explores
    assert model.metrics()["pulls"] == {a: reference._counts[a] for a in arms}


def test_only_the_pulled_arms_reward_is_learned() -> None:
    rows = records(SPEC, 30)
    a, b = FeedModel(SPEC), FeedModel(SPEC)
    for record, at in rows[:-1]:
        a.step(record, at)
        b.step(record, at)
    record, at = rows[-1]
    out_a = a.step(record, at)
    pulled = a.state.last_pulled
    other = next(arm for arm in SPEC.arms if arm != pulled)
    out_b = b.step({**record, other: record[other] + 1000.0}, at)  # an unpulled arm's reward
    assert out_a is not None and out_b is not None
    assert (out_a.arms, out_a.commitment) == (out_b.arms, out_b.commitment)
    c = FeedModel(SPEC)
    for rec, t in rows[:-1]:
        c.step(rec, t)
    out_c = c.step({**record, pulled: record[pulled] + 1.0}, at)  # the pulled arm's reward
    assert out_c is not None and out_c.commitment != out_a.commitment


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_two_instances_agree_and_checkpoint_restore_continues_exactly(
    tmp_path: Path, policy: str
) -> None:
    spec = load_feed_spec(policy_spec(tmp_path, policy))
    rows = records(spec, 300)
    whole = outputs(FeedModel(spec), rows)
    assert whole == outputs(FeedModel(spec), rows)  # an independent instance
    first = FeedModel(spec)
    head = outputs(first, rows[:120])
    blob = first.checkpoint()
    restored = FeedModel(spec)
    restored.restore(blob)
    assert restored.commitment() == first.commitment()
    assert head + outputs(restored, rows[120:]) == whole
    # the commitments follow the learning, and the policy explores every arm
    assert len({row[2] for row in whole}) > 250
    assert {row[5] for row in whole} == set(spec.arms)


def test_commitment_covers_counts_estimates_and_generators(tmp_path: Path) -> None:
    spec = load_feed_spec(policy_spec(tmp_path, "thompson"))
    model = FeedModel(spec)
    outputs(model, records(spec, 50))
    policy = model.state.model
    before = model.commitment()

    policy._counts["AAPL"] += 1
    assert model.commitment() != before
    policy._counts["AAPL"] -= 1
    assert model.commitment() == before

    policy._rewards["KO"].update(0.5)  # an arm's estimate
    assert model.commitment() != before

    fresh = FeedModel(spec)
    outputs(fresh, records(spec, 50))
    assert fresh.commitment() == before
    fresh.state.model._rewards["AMZN"]._rng.random()  # an arm's generator draws once
    assert fresh.commitment() != before
    fresh = FeedModel(spec)
    outputs(fresh, records(spec, 50))
    fresh.state.model._rng.random()  # the policy's generator
    assert fresh.commitment() != before


def test_bad_rewards_are_rejected_before_the_model_moves(tmp_path: Path) -> None:
    spec = load_feed_spec(policy_spec(tmp_path, "ucb"))
    model = FeedModel(spec)
    rows = records(spec, 10)
    outputs(model, rows[:5])
    state = model.checkpoint()
    record, at = rows[5]
    missing = {k: v for k, v in record.items() if k != "KO"}
    with pytest.raises(Rejected) as info:
        model.step(missing, at)
    assert info.value.reason == "missing_field" and "'KO'" in info.value.detail
    assert model.checkpoint() == state


def test_beta_rewards_must_be_zero_or_one(tmp_path: Path) -> None:
    text = policy_spec(tmp_path, "thompson").read_text()
    path = tmp_path / "beta.toml"
    beta = text.replace('class = "proba.Gaussian"', 'class = "proba.Beta"\nalpha = 2')
    # a Beta reward is the field itself (0 or 1), never -|field|
    path.write_text(beta)
    with pytest.raises(
        ConfigError,
        match=r"output\.reward_transform = 'negative_abs': "
        r"expected identity for a Beta reward",
    ):
        load_feed_spec(path)
    path.write_text(beta.replace('reward_transform = "negative_abs"', ""))
    spec = load_feed_spec(path)
    model = FeedModel(spec)
    arms = list(spec.arms)
    ones = {a: 1.0 for a in arms}
    out = model.step({**ones, "KO": 0.0}, 1_000)
    assert out is not None
    state = model.checkpoint()
    with pytest.raises(Rejected) as info:
        model.step({**ones, "AAPL": 0.5}, 2_000)
    assert info.value.reason == "bad_reward" and "'AAPL'" in info.value.detail
    assert model.checkpoint() == state
    # scores are posterior means alpha / (alpha + beta); the prior is Beta(2, 1)
    pulled = model.state.last_pulled
    for a in out.arms:
        expected = (3 / 4 if pulled != "KO" else 2 / 4) if a.arm == pulled else 2 / 3
        assert a.raw_value == expected, a
    reference = proba.Beta(alpha=2)
    assert reference.alpha / (reference.alpha + reference.beta) == 2 / 3


def test_each_arm_publishes_on_its_own_deviation_and_heartbeat() -> None:
    model = FeedModel(SPEC)
    seen_publish: dict[str, int] = dict.fromkeys(SPEC.arms, 0)
    for record, at in records(SPEC, 300):
        out = model.step(record, at)
        assert out is not None
        assert out.publish == any(a.publish for a in out.arms)
        pulled = model.state.last_pulled
        for a in out.arms:
            seen_publish[a.arm] += a.publish
            if a.arm != pulled and out.seq > 1:
                # an arm not pulled keeps its score: no deviation, heartbeat is a day
                assert not a.publish
    assert all(n >= 1 for n in seen_publish.values())
    assert sum(seen_publish.values()) < 300 * len(SPEC.arms) // 2
    assert not math.isnan(sum(a.raw_value for a in out.arms))
