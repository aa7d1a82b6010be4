from __future__ import annotations

from pathlib import Path

import pytest
from eth_hash.auto import keccak

from oracle.config import ConfigError, feed_id_bytes32, load_feed_spec, load_feed_specs
from oracle.config.allowlist import ComponentSpec
from oracle.config.feeds import MODEL_NEEDS_DETERMINISTIC_SOURCES, arm_feed_id
from tests.registry.specs import http_spec_text

REPO = Path(__file__).resolve().parents[2]
FEEDS = REPO / "feeds"

VALID = """
id = "T/x"
version = 1
description = "t"
decimals = 8

[[sources]]
name = "r"
kind = "replay"
dataset = "river:SP500Stocks"

[features]
fields = ["AAPL", "AMZN"]
target = "y"

[[model.steps]]
class = "preprocessing.StandardScaler"

[[model.steps]]
class = "linear_model.LinearRegression"

[output]
kind = "forecast"
horizon = 1

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 50
heartbeat_s = 60
"""


def write(tmp_path: Path, text: str, name: str = "feed.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_feed_spec(path)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("path", sorted(FEEDS.glob("*.toml")), ids=lambda p: p.stem)
def test_demo_feeds_are_valid(path: Path) -> None:
    spec = load_feed_spec(path)
    assert spec.id_bytes32 == keccak(spec.id.encode())


def test_valid_spec_reads_everything(tmp_path: Path) -> None:
    spec = load_feed_spec(write(tmp_path, VALID))
    assert spec.id == "T/x"
    assert spec.decimals == 8
    assert spec.features.fields == ("AAPL", "AMZN")
    assert spec.model is not None
    assert [s.name for s in spec.model.steps] == [
        "preprocessing.StandardScaler",
        "linear_model.LinearRegression",
    ]
    assert spec.output_kind == "forecast" and spec.horizon == 1
    assert spec.deviation_bps == 50 and spec.heartbeat_s == 60
    assert len(spec.digest) == 32


def test_feed_id_is_keccak_of_the_string_id() -> None:
    # keccak256("ETH/USD"), computed independently with eth_hash
    assert feed_id_bytes32("ETH/USD") == keccak(b"ETH/USD")
    assert len(feed_id_bytes32("ETH/USD")) == 32


def test_spec_digest_changes_with_content(tmp_path: Path) -> None:
    a = load_feed_spec(write(tmp_path, VALID, "a.toml"))
    b = load_feed_spec(
        write(tmp_path, VALID.replace("heartbeat_s = 60", "heartbeat_s = 61"), "b.toml")
    )
    assert a.digest != b.digest


def test_unknown_key_names_file_key_value_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("decimals = 8", "decimals = 8\ndecimal = 8"))
    [problem] = problems_of(path)
    assert str(path) in problem
    assert "decimal = 8" in problem
    assert "did you mean 'decimals'" in problem


def test_nested_unknown_key_is_pointed_at(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("heartbeat_s = 60", "heartbeat_s = 60\nhartbeat = 1"))
    [problem] = problems_of(path)
    assert "publish.hartbeat" in problem
    assert "did you mean 'heartbeat_s'" in problem


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("decimals = 8", "decimals = 99", "decimals = 99: expected an integer in [0, 36]"),
        ("decimals = 8", 'decimals = "8"', "expected an integer, got string"),
        ("decimals = 8", "decimals = true", "expected an integer, got boolean"),
        ('id = "T/x"', 'id = "has space"', "id = 'has space'"),
        (
            "heartbeat_s = 60",
            "heartbeat_s = 0",
            "heartbeat_s = 0: expected an integer in [1, 604800]",
        ),
        (
            'rounding = "ROUND_HALF_EVEN"',
            'rounding = "ROUND_HALF_EVN"',
            "did you mean 'ROUND_HALF_EVEN'",
        ),
        ('kind = "forecast"', 'kind = "policy"', "expected a bandit policy here, got a regressor"),
        ('dataset = "river:SP500Stocks"', 'dataset = "river:CreditCard"', "river:SP500Stocks"),
        ('dataset = "river:SP500Stocks"', 'dataset = "nope.csv"', "existing .csv file"),
        ("horizon = 1", "horizon = 100000", "horizon = 100000"),
    ],
)
def test_bad_values_are_refused_with_what_was_expected(
    tmp_path: Path, old: str, new: str, fragment: str
) -> None:
    assert old in VALID
    problems = problems_of(write(tmp_path, VALID.replace(old, new, 1)))
    assert any(fragment in p for p in problems), problems


def test_missing_required_key(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, VALID.replace("decimals = 8\n", "")))
    assert any("decimals = (missing): required" in p for p in problems)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = VALID.replace("decimals = 8", "decimals = -1").replace(
        "heartbeat_s = 60", "heartbeat_s = -5"
    )
    assert len(problems_of(write(tmp_path, text))) == 2


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "id = ")
    [problem] = problems_of(path)
    assert str(path) in problem and "TOML" in problem


def test_duplicate_feed_ids_across_files(tmp_path: Path) -> None:
    a, b = write(tmp_path, VALID, "a.toml"), write(tmp_path, VALID, "b.toml")
    with pytest.raises(ConfigError, match="unique feed id"):
        load_feed_specs([a, b])


# -- hostile model specs -------------------------------------------------------------------

HOSTILE = [
    ('class = "linear_model.LinearRegression"', 'class = "os.system"', "allowlisted class"),
    (
        'class = "linear_model.LinearRegression"',
        'class = "river.linear_model.LinearRegression"',
        "import paths are not accepted",
    ),
    (
        'class = "linear_model.LinearRegression"',
        'class = "linear_model.PARegressor"',
        "allowlisted class",
    ),
    (
        'class = "linear_model.LinearRegression"',
        'class = "linear_model.LinearRegresion"',
        "did you mean 'linear_model.LinearRegression'",
    ),
    (
        'class = "linear_model.LinearRegression"',
        'class = "linear_model.LinearRegression"\nl2 = "__import__(\'os\')"',
        "expected a number, got string",
    ),
    (
        'class = "linear_model.LinearRegression"',
        'class = "linear_model.LinearRegression"\nl2 = 1e300',
        "expected a number in [0.0, 1000.0]",
    ),
    (
        'class = "linear_model.LinearRegression"',
        'class = "linear_model.LinearRegression"\ninitializer = "x"',
        "unknown key",
    ),
    (
        'class = "linear_model.LinearRegression"',
        'class = "linear_model.LinearRegression"\n[model.steps.optimizer]\nclass = "optim.Evil"',
        "allowlisted class",
    ),
    (
        'class = "linear_model.LinearRegression"',
        'class = "preprocessing.StandardScaler"',
        "expected a forecaster or regressor here, got a transformer",
    ),
    (
        'class = "linear_model.LinearRegression"',
        'class = "anomaly.HalfSpaceTrees"\nseed = 1',
        "expected a forecaster or regressor here",
    ),
]


@pytest.mark.parametrize(("old", "new", "fragment"), HOSTILE)
def test_hostile_model_specs_are_refused(tmp_path: Path, old: str, new: str, fragment: str) -> None:
    problems = problems_of(write(tmp_path, VALID.replace(old, new, 1)))
    assert any(fragment in p for p in problems), problems


def test_huge_tree_and_unseeded_randomness_are_refused(tmp_path: Path) -> None:
    text = (FEEDS / "waterflow_anomaly.toml").read_text()
    problems = problems_of(
        write(tmp_path, text.replace("height = 6", "height = 40").replace("seed = 42\n", ""))
    )
    assert any("height = 40: expected an integer in [1, 12]" in p for p in problems)
    assert any("seed = None: required by anomaly.HalfSpaceTrees" in p for p in problems)


def test_anomaly_model_needs_explicit_limits(tmp_path: Path) -> None:
    text = (FEEDS / "waterflow_anomaly.toml").read_text()
    start = text.index("ranges =")
    end = text.index("\n", start)
    problems = problems_of(write(tmp_path, text[:start] + text[end:]))
    assert any("explicit limits" in p for p in problems)


def test_components_build_only_from_the_allowlist(tmp_path: Path) -> None:
    spec = load_feed_spec(write(tmp_path, VALID))
    assert spec.model is not None
    lr = spec.model.steps[1]
    assert isinstance(lr, ComponentSpec)
    assert type(lr.build()).__name__ == "LinearRegression"


# -- policy feeds (one on-chain feed per arm) ----------------------------------------------

POLICY = """
id = "T/bandit"
version = 1
description = "t"
decimals = 6

[[sources]]
name = "r"
kind = "replay"
dataset = "river:SP500Stocks"

[features]
fields = ["AAPL", "AMZN", "KO"]

[[model.steps]]
class = "bandit.EpsilonGreedy"
epsilon = 0.1
seed = 7

[output]
kind = "policy"
arms = ["KO", "apple", "AMZN"]

[output.rewards]
apple = "AAPL"

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 50
heartbeat_s = 60
"""


def test_policy_spec_reads_arms_in_their_order_and_reward_fields(tmp_path: Path) -> None:
    spec = load_feed_spec(write(tmp_path, POLICY))
    assert spec.output_kind == "policy"
    assert spec.arms == ("KO", "apple", "AMZN")  # the spec's order, not sorted
    assert spec.reward_fields == ("KO", "AAPL", "AMZN")
    assert spec.features.target is None and spec.features.record_fields == ("AAPL", "AMZN", "KO")
    assert [o.id for o in spec.outputs] == ["T/bandit/KO", "T/bandit/apple", "T/bandit/AMZN"]
    assert [o.arm for o in spec.outputs] == list(spec.arms)
    assert all(o.description == f"t [arm {o.arm}]" for o in spec.outputs)


def test_arm_feed_id_is_keccak_of_feed_id_slash_arm(tmp_path: Path) -> None:
    spec = load_feed_spec(write(tmp_path, POLICY))
    assert arm_feed_id("T/bandit", "KO") == "T/bandit/KO"
    assert spec.outputs[0].id_bytes32 == bytes(keccak(b"T/bandit/KO"))
    assert spec.outputs[0].id_bytes32 == feed_id_bytes32("T/bandit/KO")
    # a feed that is not a policy publishes itself only
    plain = load_feed_spec(write(tmp_path, VALID, "plain.toml"))
    assert [(o.id, o.id_bytes32) for o in plain.outputs] == [("T/x", plain.id_bytes32)]


def test_example_policy_spec_is_valid() -> None:
    spec = load_feed_spec(REPO / "docs" / "examples" / "sp500_bandit.toml")
    assert spec.output_kind == "policy" and len(spec.arms) == 5


BAD_POLICY = [
    ('arms = ["KO", "apple", "AMZN"]', "arms = []", "arms = []: expected between 1 and 32 arms"),
    (
        'arms = ["KO", "apple", "AMZN"]',
        'arms = ["KO", "KO"]',
        "arms = 'KO': expected each arm once",
    ),
    (
        'arms = ["KO", "apple", "AMZN"]',
        "arms = [" + ", ".join(f'"a{i}"' for i in range(33)) + "]",
        "expected between 1 and 32 arms",
    ),
    ('arms = ["KO", "apple", "AMZN"]', 'arms = ["KO", "a/b"]', "arms = 'a/b': expected arm names"),
    ('arms = ["KO", "apple", "AMZN"]', 'arms = ["KO", ""]', "arms = '': expected arm names"),
    ('arms = ["KO", "apple", "AMZN"]', f'arms = ["{"x" * 33}"]', "expected arm names of 1-32"),
    ('arms = ["KO", "apple", "AMZN"]', 'arms = "KO"', "expected an array of arm names"),
    (
        'arms = ["KO", "apple", "AMZN"]',
        "",
        "output.arms = None: required: the arms in their fixed order",
    ),
    (
        'apple = "AAPL"',
        'apple = "MSFT"',
        "output.rewards.apple = 'MSFT': expected the reward of arm 'apple' to be one of "
        "[features] fields (AAPL, AMZN, KO)",
    ),
    (
        'apple = "AAPL"',
        'apple = "AAPL"\npear = "KO"',
        "output.rewards.pear = 'KO': expected one of the arms",
    ),
    (
        'apple = "AAPL"',
        "",
        "output.arms = 'apple': expected the reward of arm 'apple' to be one of [features]",
    ),
    (
        'class = "bandit.EpsilonGreedy"',
        'class = "bandit.EpsilonGredy"',
        "did you mean 'bandit.EpsilonGreedy'",
    ),
    ('class = "bandit.EpsilonGreedy"', 'class = "bandit.Exp3"', "expected an allowlisted class"),
    (
        'class = "bandit.EpsilonGreedy"',
        'class = "bandit.LinUCBDisjoint"',
        "expected an allowlisted class",
    ),
    (
        'class = "bandit.EpsilonGreedy"',
        'class = "linear_model.LinearRegression"',
        "expected a bandit policy here, got a regressor",
    ),
    ("epsilon = 0.1", "epsilon = 2.0", "epsilon = 2.0: expected a number in [0.0, 1.0]"),
    ("epsilon = 0.1", 'epsilon = "0.1"', "expected a number, got string"),
    ("epsilon = 0.1", "", "epsilon = None: required by bandit.EpsilonGreedy"),
    ("seed = 7", "", "seed = None: required by bandit.EpsilonGreedy"),
    ("seed = 7", "seed = 7\nburn_in = -1", "burn_in = -1: expected an integer in [0, 10000]"),
    (
        "seed = 7",
        'seed = 7\n[model.steps.reward_obj]\nclass = "proba.Beta"',
        "expected a reward statistic here, got a reward distribution",
    ),
    (
        "seed = 7",
        'seed = 7\n[model.steps.reward_obj]\nclass = "stats.EWMean"\nfading_factor = 0.0',
        "fading_factor = 0.0: expected a number in (0.0, 1.0]",
    ),
    (
        'fields = ["AAPL", "AMZN", "KO"]',
        'fields = ["AAPL", "AMZN", "KO"]\ntarget = "y"',
        "features.target = 'y': expected no target for a policy feed",
    ),
    (
        'fields = ["AAPL", "AMZN", "KO"]',
        'fields = ["AAPL", "AMZN", "KO"]\nlags = 2',
        "features.lags = 2: expected no lags for a policy feed",
    ),
    (
        'kind = "policy"',
        'kind = "policy"\nhorizon = 1',
        "output.horizon = 1: unknown key",
    ),
    (
        "[[model.steps]]",
        '[[model.steps]]\nclass = "preprocessing.StandardScaler"\n\n[[model.steps]]',
        "expected the bandit policy to be the only step",
    ),
    (
        "[[model.steps]]",
        "[model]\nmae_window = 10\n\n[[model.steps]]",
        "model.mae_window = 10: expected no error tracking for a policy feed",
    ),
]


@pytest.mark.parametrize(("old", "new", "fragment"), BAD_POLICY)
def test_bad_policy_specs_are_refused_naming_file_key_value_and_expectation(
    tmp_path: Path, old: str, new: str, fragment: str
) -> None:
    assert old in POLICY
    path = write(tmp_path, POLICY.replace(old, new, 1))
    problems = problems_of(path)
    assert any(fragment in p and p.startswith(str(path)) for p in problems), problems


def test_thompson_sampling_needs_a_reward_distribution(tmp_path: Path) -> None:
    text = POLICY.replace(
        'class = "bandit.EpsilonGreedy"\nepsilon = 0.1', 'class = "bandit.ThompsonSampling"'
    )
    problems = problems_of(write(tmp_path, text))
    assert any("reward_obj = None: required by bandit.ThompsonSampling" in p for p in problems)
    ok = text.replace("seed = 7", 'seed = 7\n[model.steps.reward_obj]\nclass = "proba.Gaussian"')
    assert load_feed_spec(write(tmp_path, ok, "ok.toml")).model is not None
    wrong = text.replace("seed = 7", 'seed = 7\n[model.steps.reward_obj]\nclass = "stats.Mean"')
    assert any(
        "expected a reward distribution here, got a reward statistic" in p
        for p in problems_of(write(tmp_path, wrong, "wrong.toml"))
    )


def test_bandit_model_with_a_non_policy_kind_is_refused(tmp_path: Path) -> None:
    text = VALID.replace(
        '[[model.steps]]\nclass = "linear_model.LinearRegression"',
        '[[model.steps]]\nclass = "bandit.UCB"\ndelta = 1.0\nseed = 1',
    )
    assert text != VALID
    problems = problems_of(write(tmp_path, text))
    assert any(
        "expected a forecaster or regressor here, got a bandit policy" in p for p in problems
    )


def test_policy_feed_needs_a_replay_source(tmp_path: Path) -> None:
    text = POLICY.replace(
        'kind = "replay"\ndataset = "river:SP500Stocks"',
        'kind = "http"\nurl = "http://x/p"\npath = "p"',
    )
    problems = problems_of(write(tmp_path, text))
    assert any("expected a replay source for a policy feed" in p for p in problems), problems


def test_arm_feed_ids_must_not_clash_with_other_feeds(tmp_path: Path) -> None:
    policy = write(tmp_path, POLICY, "policy.toml")
    clash = write(tmp_path, VALID.replace('id = "T/x"', 'id = "T/bandit/KO"'), "clash.toml")
    for order in ([policy, clash], [clash, policy]):
        with pytest.raises(ConfigError) as info:
            load_feed_specs(order)
        assert "'T/bandit/KO' is also published by" in str(info.value)
    assert len(load_feed_specs([policy, write(tmp_path, VALID, "other.toml")])) == 2


def test_a_model_fed_by_http_sources_is_refused(tmp_path: Path) -> None:
    # each member reads its own HTTP values: the members' models (and commitments) would
    # differ, and followers would refuse every report of the feed
    text = http_spec_text(feed="T/http-forecast")
    problems = problems_of(write(tmp_path, text))
    assert any(MODEL_NEEDS_DETERMINISTIC_SOURCES in p for p in problems), problems
    # the same source as a value feed (the median, no model) is accepted
    value_feed = (
        text.replace("lags = 3", 'target = "value"')
        .replace('[[model.steps]]\nclass = "linear_model.LinearRegression"\n', "")
        .replace('kind = "forecast"\nhorizon = 1', 'kind = "value"')
    )
    assert load_feed_spec(write(tmp_path, value_feed, "value.toml")).model is None
