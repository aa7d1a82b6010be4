"""`mira model register SPEC --dry-run`: local validation and the spec hash, nothing sent
(the on-chain half: tests/cli/test_model_registry.py)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from oracle.cli.main import cli
from oracle.config import load_feed_spec

REPO = Path(__file__).resolve().parents[2]


def test_a_valid_spec_prints_its_hash() -> None:
    path = REPO / "feeds" / "waterflow_anomaly.toml"
    result = CliRunner().invoke(cli, ["model", "register", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    spec = load_feed_spec(path)
    assert out["spec_hash"] == "0x" + spec.digest.hex()
    assert out["feed"] == "WATERFLOW/anomaly"
    assert out["model"] == ["anomaly.HalfSpaceTrees"]
    assert out["registered_on_chain"] is False


def test_the_hash_follows_the_spec(tmp_path: Path) -> None:
    text = (REPO / "feeds" / "sp500_forecast.toml").read_text()
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(text)
    b.write_text(text.replace("lr = 0.003", "lr = 0.004"))
    hashes = []
    for path in (a, b):
        result = CliRunner().invoke(cli, ["model", "register", str(path), "--dry-run", "--json"])
        assert result.exit_code == 0, result.output
        hashes.append(json.loads(result.output)["spec_hash"])
    assert hashes[0] != hashes[1]


def test_a_hostile_spec_is_refused_with_the_file_and_key(tmp_path: Path) -> None:
    text = (REPO / "feeds" / "sp500_forecast.toml").read_text()
    path = tmp_path / "hostile.toml"
    path.write_text(text.replace('"linear_model.LinearRegression"', '"river.linear_model.os"'))
    result = CliRunner().invoke(cli, ["model", "register", str(path), "--dry-run"])
    assert result.exit_code == 1
    assert str(path) in result.output
    assert "model.steps[1].class" in result.output
    assert "import paths are not accepted" in result.output


def test_a_values_spec_lists_its_field_feeds() -> None:
    from eth_hash.auto import keccak

    path = REPO / "feeds" / "rl" / "sp500_prices.toml"
    result = CliRunner().invoke(cli, ["model", "register", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["output"] == "values" and out["model"] is None and "arm_feeds" not in out
    assert len(out["field_feeds"]) == 10
    assert out["field_feeds"]["KO"] == {
        "feed": "SP500/price/KO",
        "feed_id_bytes32": "0x" + keccak(b"SP500/price/KO").hex(),
    }


def test_a_policy_spec_lists_its_arm_feeds() -> None:
    from eth_hash.auto import keccak

    path = REPO / "docs" / "examples" / "sp500_bandit.toml"
    result = CliRunner().invoke(cli, ["model", "register", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["output"] == "policy" and out["model"] == ["bandit.EpsilonGreedy"]
    assert list(out["arm_feeds"]) == ["AAPL", "AMZN", "JPM", "KO", "MSFT"]
    ko = out["arm_feeds"]["KO"]
    assert ko == {
        "feed": "SP500/bandit/KO",
        "feed_id_bytes32": "0x" + keccak(b"SP500/bandit/KO").hex(),
    }
