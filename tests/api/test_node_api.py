"""A whole node in-process: replay feed → model → storage, the REST API, restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import Engine

from oracle.config import feed_id_bytes32, load_node
from oracle.node.node import Node
from oracle.storage import DatabaseNotMigrated, Store
from tests.fixtures.db import Backend

REPO = Path(__file__).resolve().parents[2]


def node_config(
    tmp_path: Path, url: str, spec: Path = REPO / "feeds" / "sp500_forecast.toml"
) -> Path:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "sp500.toml").write_text(spec.read_text())
    path = tmp_path / "node.toml"
    path.write_text(
        f'[node]\nname = "t"\n[database]\nurl = "{url}"\n[api]\nport = 0\n'
        "[scheduler]\nflush_every_s = 0.05\ncheckpoint_every_s = 0.2\n"
    )
    return path


async def wait_for(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_node_serves_feeds_and_resumes_after_restart(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    config, feeds = load_node(node_config(tmp_path, backend.node_url))
    node = Node(config, feeds)
    await node.start()
    runner = node.runners["SP500/forecast-1"]
    try:
        await wait_for(lambda: runner.finished, "the replay to finish")
        base = f"http://127.0.0.1:{node.api.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{base}/readyz") as r:
                body = await r.json()
                assert r.status == 200, body
            async with http.get(f"{base}/v1/feeds/SP500/forecast-1") as r:
                feed = await r.json()
            assert feed["latest"]["seq"] == 1257
            assert feed["latest"]["model_commitment"].startswith("0x")
            assert feed["metrics"]["mae"] is not None
            # its skill on the record: the rolling error beside the naive baseline's
            metrics = feed["metrics"]
            assert metrics["baseline"] == "last" and metrics["baseline_mae"] > 0
            assert metrics["skill"] == pytest.approx(1 - metrics["mae"] / metrics["baseline_mae"])
            async with http.get(f"{base}/v1/feeds") as r:
                assert len((await r.json())["feeds"]) == 1
            async with http.get(f"{base}/v1/models") as r:
                assert (await r.json())["models"][0]["steps"][0]["class"] == (
                    "preprocessing.StandardScaler"
                )
            async with http.get(f"{base}/v1/reports/stream") as r:  # a node without [network]
                assert r.status == 404
                assert "[network]" in (await r.json())["error"]["message"]
            async with http.get(f"{base}/v1/feeds/NOPE") as r:
                assert r.status == 404
                assert (await r.json())["error"]["status"] == 404
            async with http.post(f"{base}/v1/feeds", data=b"x" * 100) as r:
                assert r.status == 405
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
                assert 'mira_observations_total{feed="SP500/forecast-1"} 1257.0' in text
                skill = f'mira_model_skill{{feed="SP500/forecast-1"}} {metrics["skill"]!r}'
                assert skill in text
                assert 'mira_baseline_rolling_mae{baseline="last",feed="SP500/forecast-1"}' in text
            # Prometheus' own filter: only the series named
            only = [("name[]", "mira_observations_total")]
            async with http.get(f"{base}/metrics", params=only) as r:
                text = await r.text()
                assert 'mira_observations_total{feed="SP500/forecast-1"} 1257.0' in text
                assert "mira_model_skill" not in text
            too_many = [("name[]", f"m{i}") for i in range(33)]
            async with http.get(f"{base}/metrics", params=too_many) as r:
                assert r.status == 400
        commitment = runner.pipeline.model.commitment()
    finally:
        await node.stop()

    store = Store(engine)
    assert store.count_observations("SP500/forecast-1") == 1257
    # a restarted node restores from its checkpoint and has nothing left to replay
    again = Node(*load_node(node_config(mkdir(tmp_path / "x"), backend.node_url)))
    await again.start()
    try:
        r2 = again.runners["SP500/forecast-1"]
        assert r2.position == 1257 and r2.finished
        assert r2.pipeline.model.commitment() == commitment
    finally:
        await again.stop()
    assert store.count_observations("SP500/forecast-1") == 1257


async def test_node_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    config, feeds = load_node(node_config(tmp_path, f"sqlite:///{tmp_path / 'new.sqlite'}"))
    node = Node(config, feeds)
    with pytest.raises(DatabaseNotMigrated, match="mira db upgrade"):
        await node.start()
    assert not node.health().ok


def mkdir(path: Path) -> Path:
    path.mkdir()
    return path


async def test_a_policy_feed_shows_every_arms_score(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    example = REPO / "docs" / "examples" / "sp500_bandit.toml"
    node = Node(*load_node(node_config(tmp_path, backend.node_url, example)))
    await node.start()
    runner = node.runners["SP500/bandit"]
    try:
        await wait_for(lambda: runner.finished, "the replay to finish")
        base = f"http://127.0.0.1:{node.api.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/v1/feeds/SP500/bandit") as r:
                feed = await r.json()
            async with http.get(f"{base}/v1/feeds/SP500/bandit/KO") as r:  # an arm's feed
                assert r.status == 200 and await r.json() == feed
            async with http.get(f"{base}/v1/feeds/SP500/bandit/XOM") as r:
                assert r.status == 404
    finally:
        await node.stop()
    assert feed["output_kind"] == "policy"
    latest = feed["latest"]
    assert latest["seq"] == 1257
    arms = latest["arms"]
    assert [a["arm"] for a in arms] == ["AAPL", "AMZN", "JPM", "KO", "MSFT"]
    last = runner.pipeline.last_output
    assert last is not None
    assert [a["value"] for a in arms] == [str(a.value) for a in last.arms]
    assert arms[3]["feed"] == "SP500/bandit/KO"
    assert arms[3]["feed_id_bytes32"] == "0x" + feed_id_bytes32("SP500/bandit/KO").hex()
    assert sum(feed["metrics"]["pulls"].values()) == 1257
    # its skill on the record: rolling regret beside uniformly random play's
    assert feed["metrics"]["baseline"] == "uniform_random"
    assert feed["metrics"]["skill"] > 0
