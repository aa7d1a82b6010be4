"""Which RL loop a node shows comes from its own feed specs (oracle.node.loop_view): the
agent from a policy feed's chain source, the random baseline from ``[eval] random_agent``."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.config.feeds import ConfigError, load_feed_spec
from oracle.devnet import rl
from oracle.node.loop_view import LoopSource, loop_sources

REPO = Path(__file__).resolve().parents[2]
AGENT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
RANDOM = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"


def test_the_loop_is_the_policy_specs_agent_and_random_agent(tmp_path: Path) -> None:
    path = tmp_path / "rl.toml"
    path.write_text(rl.spec_text("http://127.0.0.1:8545", AGENT, 17, random_agent=RANDOM.lower()))
    spec = load_feed_spec(path)
    forecast = load_feed_spec(REPO / "feeds" / "sp500_forecast.toml")
    replayed_policy = load_feed_spec(REPO / "docs" / "examples" / "sp500_bandit.toml")
    assert loop_sources([forecast, spec, replayed_policy]) == [
        LoopSource("RL/bandit", rl.ARMS, "http://127.0.0.1:8545", AGENT, RANDOM, 17)
    ]
    # no [eval] random_agent: the loop without a baseline
    path.write_text(rl.spec_text("http://127.0.0.1:8545", AGENT, 17))
    (only,) = loop_sources([load_feed_spec(path)])
    assert only.random_agent is None


@pytest.mark.parametrize(
    ("random_agent", "says"),
    [
        ("0x1234", "expected a 0x-prefixed 20-byte hex address"),
        ("<img src=x onerror=alert(1)>", "expected a 0x-prefixed 20-byte hex address"),
        ("0x" + "<script>" * 6, "expected at most 42 characters"),
    ],
)
def test_a_bad_random_agent_is_refused(tmp_path: Path, random_agent: str, says: str) -> None:
    path = tmp_path / "rl.toml"
    text = rl.spec_text("http://127.0.0.1:8545", AGENT, 1, random_agent=RANDOM)
    path.write_text(text.replace(RANDOM, random_agent))
    with pytest.raises(ConfigError, match="random_agent") as err:
        load_feed_spec(path)
    assert says in str(err.value)


def test_a_random_agent_belongs_to_policy_feeds_only(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    text = (REPO / "feeds" / "sp500_forecast.toml").read_text()
    assert text.count("[eval]\n") == 1
    path.write_text(text.replace("[eval]\n", f'[eval]\nrandom_agent = "{RANDOM}"\n'))
    with pytest.raises(ConfigError, match="expected no random agent for output kind"):
        load_feed_spec(path)
