from __future__ import annotations

from pathlib import Path

import pytest
from eth_hash.auto import keccak

from oracle.config import ConfigError, feed_id_bytes32, load_feed_spec, load_feed_specs
from oracle.models.allowlist import ComponentSpec

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
        'class = "linear_model.LinearRegression"\nloss = "x"',
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
