"""Policies learning from an agent's logged steps (arm taken, reward, context): the spec,
the bandits and the contextual policy, the recommended arm, one report for the policy."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from oracle.config import ConfigError, feed_id_bytes32, load_feed_spec
from oracle.config.feeds import arm_feed_id, recommended_feed_id
from oracle.errors import Rejected
from oracle.models import FeedModel
from oracle.models.runner import RECOMMENDED
from tests.models.rl_specs import MODELS, rl_spec


def test_the_spec_publishes_every_arm_and_the_recommended_arm(tmp_path: Path) -> None:
    spec = load_feed_spec(rl_spec(tmp_path, "contextual"))
    assert spec.logged is not None
    assert (spec.logged.arm_field, spec.logged.reward_field, spec.logged.context) == (
        "arm",
        "reward",
        ("ctx",),
    )
    assert [o.id for o in spec.outputs] == [
        arm_feed_id("RL/bandit", "a"),
        arm_feed_id("RL/bandit", "b"),
        arm_feed_id("RL/bandit", "c"),
        "RL/bandit#arm",
    ]
    assert recommended_feed_id("RL/bandit") == "RL/bandit#arm"
    assert spec.outputs[-1].id_bytes32 == feed_id_bytes32("RL/bandit#arm")


@pytest.mark.parametrize(
    ("replace", "key", "expected"),
    [
        ({'arm_field = "arm"\n': ""}, "output.arm_field", "expected arm_field and reward_field"),
        ({'arm_field = "arm"': 'arm_field = "arms"'}, "output.arm_field", "expected one of"),
        ({"context = []": 'context = ["arm"]'}, "output.context", "expected arm_field, reward"),
    ],
)
def test_a_bad_logged_steps_spec_is_refused(
    tmp_path: Path, replace: dict[str, str], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_feed_spec(rl_spec(tmp_path, "epsilon_greedy", **replace))
    problems = [p for p in info.value.problems if p.key == key]
    assert problems, info.value.problems
    assert expected in problems[0].expected


def test_the_contextual_policy_needs_logged_steps(tmp_path: Path) -> None:
    from tests.models.policy_specs import EXAMPLE

    text = EXAMPLE.read_text()
    start = text.index("[[model.steps]]")
    end = text.index("[output]")
    path = tmp_path / "ctx.toml"
    path.write_text(text[:start] + MODELS["contextual"] + "\n" + text[end:])
    with pytest.raises(ConfigError) as info:
        load_feed_spec(path)
    assert any("logged steps" in p.expected for p in info.value.problems)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_an_unknown_arm_or_a_bad_reward_is_rejected_before_anything_is_learned(
    tmp_path: Path, model: str
) -> None:
    m = FeedModel(load_feed_spec(rl_spec(tmp_path, model)))
    m.step({"arm": 0.0, "ctx": 1.0, "reward": 1.0}, 1000)
    before = m.commitment()
    for arm in (3.0, -1.0, 0.5):
        with pytest.raises(Rejected) as info:
            m.step({"arm": arm, "ctx": 1.0, "reward": 1.0}, 2000)
        assert info.value.reason == "unknown_arm"
    assert m.seq == 1 and m.commitment() == before
    assert m.state.last_observed_at_ms == 1000


def test_a_beta_policy_rejects_a_reward_that_is_not_0_or_1(tmp_path: Path) -> None:
    beta = '[[model.steps]]\nclass = "bandit.ThompsonSampling"\nseed = 5\n'
    beta += '[model.steps.reward_obj]\nclass = "proba.Beta"\n'
    path = rl_spec(tmp_path, "thompson", **{MODELS["thompson"]: beta})
    m = FeedModel(load_feed_spec(path))
    with pytest.raises(Rejected) as info:
        m.step({"arm": 1.0, "ctx": 0.0, "reward": 0.5}, 1000)
    assert info.value.reason == "bad_reward"
    assert m.seq == 0


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_policy_learns_the_taken_arm_and_publishes_all_arms_together(
    tmp_path: Path, model: str
) -> None:
    """Arm b pays best; the agent takes arms uniformly at random. Every output carries the
    K scores and the recommended arm, all due together or none."""
    m = FeedModel(load_feed_spec(rl_spec(tmp_path, model)))
    rng = random.Random(1)
    means = [0.2, 0.8, 0.4]
    recommended = []
    for i in range(600):
        arm = rng.randrange(3)
        reward = means[arm] + rng.uniform(-0.1, 0.1)
        out = m.step({"arm": float(arm), "ctx": 1.0, "reward": reward}, 1000 * (i + 1))
        assert out is not None
        assert [a.arm for a in out.arms] == ["a", "b", "c", RECOMMENDED]
        assert len({a.publish for a in out.arms}) == 1  # one report for the whole policy
        rec = out.arms[-1]
        assert rec.value == int(rec.raw_value) * 10**8  # the index, in fixed point
        recommended.append(int(rec.raw_value))
    scores = [a.raw_value for a in out.arms[:3]]
    assert max(range(3), key=scores.__getitem__) == 1
    assert abs(scores[1] - 0.8) < 0.1
    # exploration aside, the recommendation settles on the best arm
    assert recommended[-200:].count(1) > 150
    assert m.metrics()["pulls"]["b"] > 100  # the agent's choices, as learned


def test_the_contextual_policy_recommends_by_context(tmp_path: Path) -> None:
    """Arm a pays the context, arm c pays minus the context, b pays 0: the best arm
    depends on the context's sign, which no context-free bandit can learn."""
    m = FeedModel(load_feed_spec(rl_spec(tmp_path, "contextual")))
    rng = random.Random(2)
    pay = [lambda x: x, lambda x: 0.0, lambda x: -x]
    for i in range(3000):
        ctx = rng.uniform(-1, 1)
        arm = rng.randrange(3)
        m.step({"arm": float(arm), "ctx": ctx, "reward": pay[arm](ctx)}, 1000 * (i + 1))
    policy = m.state.model
    assert policy.score("a", {"ctx": 0.9}) > 0.6
    assert policy.score("c", {"ctx": 0.9}) < -0.6
    picks_pos = [policy.recommend({"ctx": 0.9}) for _ in range(200)]
    picks_neg = [policy.recommend({"ctx": -0.9}) for _ in range(200)]
    assert picks_pos.count("a") > 170  # epsilon = 0.05 explores the rest
    assert picks_neg.count("c") > 170


@pytest.mark.parametrize("model", sorted(MODELS))
def test_a_checkpoint_restores_the_policy_exactly(tmp_path: Path, model: str) -> None:
    """A node's own checkpoint of a logged-steps policy (the contextual one's per-arm models
    and exploration generator included) continues exactly as the uninterrupted model."""
    spec = load_feed_spec(rl_spec(tmp_path, model))
    rng = random.Random(3)
    steps = [
        {"arm": float(rng.randrange(3)), "ctx": rng.uniform(-1, 1), "reward": rng.random()}
        for _ in range(80)
    ]
    whole, first = FeedModel(spec), FeedModel(spec)
    for i, rec in enumerate(steps):
        whole.step(rec, i + 1)
    for i, rec in enumerate(steps[:40]):
        first.step(rec, i + 1)
    again = FeedModel(spec)
    again.restore(first.checkpoint())
    outs = [again.step(rec, i + 41) for i, rec in enumerate(steps[40:])]
    assert again.commitment() == whole.commitment()
    last = outs[-1]
    assert last is not None and last.commitment == whole.commitment()


def test_a_replayed_policy_may_recommend_its_best_arm_too(tmp_path: Path) -> None:
    """recommend = true on a policy learning from a dataset: the best score's arm, published
    with the arms in one report."""
    from oracle.sources.replay import ReplaySource
    from tests.models.policy_specs import EXAMPLE

    text = EXAMPLE.read_text().replace('kind = "policy"', 'kind = "policy"\nrecommend = true', 1)
    path = tmp_path / "bandit.toml"
    path.write_text(text)
    spec = load_feed_spec(path)
    assert spec.outputs[-1].id == recommended_feed_id(spec.id)
    m = FeedModel(spec)
    fields = spec.features.record_fields
    for obs in ReplaySource(spec.sources[0]).read(0, 200):  # type: ignore[arg-type]
        out = m.step({k: float(obs.raw[k]) for k in fields}, obs.observed_at_ms)
        assert out is not None
        assert len(out.arms) == len(spec.arms) + 1
        assert len({a.publish for a in out.arms}) == 1
        scores = [a.raw_value for a in out.arms[:-1]]
        best = max(range(len(scores)), key=scores.__getitem__)
        assert out.arms[-1].value == best * 10**spec.decimals


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_prior_is_the_same_at_every_member_and_changes_nothing(
    tmp_path: Path, model: str
) -> None:
    """The loop's bootstrap: before any step, the policy's prior (every arm's prior score,
    the best recommended) is published; a function of the spec, drawing nothing, so two
    members make the same and the model learns afterwards as if it had not been made."""
    spec = load_feed_spec(rl_spec(tmp_path, model))
    one, two, untouched = FeedModel(spec), FeedModel(spec), FeedModel(spec)
    prior = one.prior_output(1_000)
    assert prior is not None
    assert prior == two.prior_output(1_000)
    assert one.prior_output(1_000) == prior  # asking again draws nothing
    assert prior.seq == 0 and prior.publish
    assert [a.arm for a in prior.arms] == ["a", "b", "c", RECOMMENDED]
    assert all(a.publish for a in prior.arms)
    scores = [a.raw_value for a in prior.arms[:3]]
    assert prior.arms[3].raw_value == float(scores.index(max(scores)))
    assert prior.commitment == untouched.commitment()
    step = {"arm": 1.0, "reward": 1.0, "ctx": 0.5}
    assert one.step(step, 2_000) == untouched.step(step, 2_000)
    assert one.prior_output(3_000) is None  # a step was learned: no prior any more


def test_a_feed_not_learning_from_steps_has_no_prior(tmp_path: Path) -> None:
    from tests.models.policy_specs import EXAMPLE

    assert FeedModel(load_feed_spec(EXAMPLE)).prior_output(1_000) is None
