"""Deploying the whole system to a real anvil with a locally signing deployer."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from oracle.chain.anvil import Anvil
from oracle.chain.deploy import at
from oracle.chain.system import (
    MAX_HISTORY_DEPTH,
    FeedRegistration,
    Manifest,
    deploy_system,
    history_depth,
)
from oracle.config import feed_id_bytes32
from oracle.errors import ChainError


def _feed(name: str, decimals: int = 8, depth: int = 61) -> FeedRegistration:
    return FeedRegistration(name, feed_id_bytes32(name), decimals, f"{name} description", depth)


def test_deploy_registers_feeds_with_chainlink_proxies(
    w3: Web3, anvil: Anvil, tmp_path: Path
) -> None:
    deployer = Account.from_key(anvil.private_keys[1])
    feeds = [_feed("ETH/USD", depth=history_depth(60)), _feed("SP500/forecast-1", 6, depth=2)]
    manifest = deploy_system(w3, deployer, anvil.url, feeds)

    oracle = at(w3, "MiraOracle", manifest.oracle)
    assert oracle.functions.owner().call() == deployer.address
    assert manifest.chain_id == 31337 and manifest.owner == deployer.address
    for feed in feeds:
        entry = manifest.feeds[feed.id]
        proxy = at(w3, "MiraFeedProxy", entry["proxy"])
        assert proxy.functions.decimals().call() == feed.decimals
        assert proxy.functions.description().call() == feed.description
        # Chainlink's numbering before the first update: phase 1, aggregator round 0
        phase_1 = 1 << 64
        assert proxy.functions.latestRoundData().call() == [phase_1, 0, 0, 0, phase_1]
        assert oracle.functions.historyDepthOf(feed.feed_id).call() == feed.history_depth
        assert entry["feed_id"] == "0x" + feed.feed_id.hex()

    # pull mode's verifier on the same committee, with the oracle's bound on the future
    verifier = at(w3, "MiraPullVerifier", manifest.pull_verifier)
    assert verifier.functions.committee().call() == manifest.oracle
    assert verifier.functions.maxFutureDrift().call() == oracle.functions.maxFutureDrift().call()

    path = tmp_path / "manifest.json"
    manifest.write(path)
    assert Manifest.read(path) == manifest


def test_duplicate_feed_is_refused_before_sending(w3: Web3, anvil: Anvil) -> None:
    deployer = Account.from_key(anvil.private_keys[1])
    with pytest.raises(ChainError, match="listed twice"):
        deploy_system(w3, deployer, anvil.url, [_feed("X/Y"), _feed("X/Y")])


def test_unreadable_manifest_says_which_file(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    with pytest.raises(ChainError, match=r"manifest\.json"):
        Manifest.read(bad)


def test_a_policy_feed_registers_one_proxy_per_arm(w3: Web3, anvil: Anvil) -> None:
    from oracle.chain.system import feed_registrations
    from oracle.config import load_feed_spec
    from tests.models.policy_specs import EXAMPLE

    spec = load_feed_spec(EXAMPLE)
    plain = load_feed_spec(Path(__file__).resolve().parents[2] / "feeds" / "eth_usd_median.toml")
    feeds = feed_registrations([spec, plain])
    assert [f.id for f in feeds] == [f"SP500/bandit/{arm}" for arm in spec.arms] + ["ETH/USD"]
    manifest = deploy_system(w3, Account.from_key(anvil.private_keys[1]), anvil.url, feeds)
    oracle = at(w3, "MiraOracle", manifest.oracle)
    assert SPEC_ID not in manifest.feeds
    for arm in spec.arms:
        feed_id = feed_id_bytes32(f"SP500/bandit/{arm}")
        entry = manifest.feeds[f"SP500/bandit/{arm}"]
        assert entry["feed_id"] == "0x" + feed_id.hex()
        assert oracle.functions.proxyOf(feed_id).call() == entry["proxy"]
        proxy = at(w3, "MiraFeedProxy", entry["proxy"])  # what an AggregatorV3 consumer reads
        assert proxy.functions.decimals().call() == spec.decimals
        assert proxy.functions.description().call() == f"{spec.description} [arm {arm}]"
    assert len({e["proxy"] for e in manifest.feeds.values()}) == len(spec.arms) + 1
    # each feed keeps a one-hour TWAP's rounds at its spec's heartbeat, on-chain
    for feed, s in zip(feeds, [spec] * len(spec.arms) + [plain], strict=True):
        assert feed.history_depth == history_depth(s.heartbeat_s)
        assert oracle.functions.historyDepthOf(feed.feed_id).call() == feed.history_depth


SPEC_ID = "SP500/bandit"


def test_history_depth_covers_an_hour_at_the_heartbeat() -> None:
    assert history_depth(60) == 61  # 60 heartbeats in the hour, one more brackets its start
    assert history_depth(3600) == 2
    assert history_depth(7) == MAX_HISTORY_DEPTH  # capped at the contract's bound
    assert history_depth(86400) == 2
