"""The API the dashboard reads, on a whole node in-process (replay feed, SQLite, no
[network]): the /ui/ files with their security headers, the history endpoints' paging and
their refusal of bad query strings, and 404s that say what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from oracle.config import load_node
from oracle.node.node import Node
from oracle.storage import make_engine, upgrade
from tests.api.test_node_api import REPO, node_config, wait_for

FEED = "SP500/forecast-1"


@pytest.fixture
async def api(tmp_path: Path) -> Any:
    config, feeds = load_node(node_config(tmp_path, f"sqlite:///{tmp_path / 'node.sqlite'}"))
    upgrade(make_engine(config.database.url))
    node = Node(config, feeds)
    await node.start()
    try:
        runner = node.runners[FEED]
        await wait_for(lambda: runner.finished, "the replay to finish")
        await node.flush()
        async with aiohttp.ClientSession(f"http://127.0.0.1:{node.api.port}") as http:
            yield http
    finally:
        await node.stop()


async def get(http: aiohttp.ClientSession, path: str) -> tuple[int, dict[str, str], Any]:
    async with http.get(path) as r:
        body = await (r.json() if r.content_type == "application/json" else r.text())
        return r.status, dict(r.headers), body


async def test_ui_files_carry_a_strict_csp_and_unknown_paths_are_html_404(api: Any) -> None:
    status, headers, body = await get(api, "/ui/")
    assert status == 200 and '<script type="module" src="/ui/app.js">' in body
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = await get(api, "/ui/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    status, _, body = await get(api, "/ui/members.json")
    assert body == {"members": [{"name": "t", "base": ""}]}
    for path in ("/ui/feeds/NOPE", "/ui/..%2fserver.py", "/ui/x<script>", "/ui/style.css/x"):
        status, headers, body = await get(api, path)
        assert status == 404, path
        assert headers["Content-Type"].startswith("text/html")
        assert "Content-Security-Policy" in headers and "Not found" in body
        assert "Traceback" not in body and "def " not in body


async def test_feed_history_pages_back_newest_first(api: Any) -> None:
    status, _, first = await get(api, f"/v1/feeds/{FEED}/history?limit=5")
    assert status == 200, first
    seqs = [o["seq"] for o in first["outputs"]]
    assert len(seqs) == 5 and seqs == sorted(seqs, reverse=True)
    assert [o["seq"] for o in first["observations"]] == seqs
    assert first["next_before"] == seqs[-1]
    assert first["target"] == "vol" or first["target"]
    # the model's own per-step errors, the window its rolling MAE is over
    assert first["model_errors"] and all(e >= 0 for e in first["model_errors"])
    _, _, second = await get(api, f"/v1/feeds/{FEED}/history?limit=5&before={seqs[-1]}")
    assert [o["seq"] for o in second["outputs"]] == [s - 5 for s in seqs]
    _, _, oldest = await get(api, f"/v1/feeds/{FEED}/history?limit=500&before=3")
    assert [o["seq"] for o in oldest["outputs"]] == [2, 1][: len(oldest["outputs"])]
    assert oldest["next_before"] is None  # a short page: nothing further back


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("limit=0", "limit must be from 1 to 500, not 0"),
        ("limit=501", "limit must be from 1 to 500, not 501"),
        ("limit=-5", "limit must be a whole number"),
        ("limit=" + "9" * 40, "limit must be a whole number"),
        ("limit=%EF%BC%95", "limit must be a whole number"),  # a full-width digit
        ("before=1.5", "before must be a whole number"),
        ("before=%3Cscript%3Ealert(1)%3C/script%3E", "before must be a whole number"),
        ("limit=1&limit=1", "pass limit at most once"),
    ],
)
async def test_bad_query_strings_are_400_json(api: Any, query: str, says: str) -> None:
    status, headers, body = await get(api, f"/v1/feeds/{FEED}/history?{query}")
    assert status == 400 and headers["Content-Type"].startswith("application/json")
    assert says in body["error"]["message"]
    status, _, body = await get(api, f"/v1/transmissions?{query}")
    assert status == 400


async def test_unknown_feeds_and_missing_parts_are_404_json(api: Any) -> None:
    for path, says in [
        ("/v1/feeds/NO/SUCH/history", "no feed 'NO/SUCH'"),
        ("/v1/feeds/%3Cimg%20src=x%3E", "no feed '<img src=x>'"),
        ("/v1/reports", "runs no [network]"),
        ("/v1/chain", "runs no [network]"),
    ]:
        status, _, body = await get(api, path)
        assert status == 404 and says in body["error"]["message"], (path, body)
    long = "x" * 5000
    status, _, body = await get(api, f"/v1/feeds/{long}")
    assert status == 404 and len(body["error"]["message"]) < 400
    # a node whose feeds learn from no on-chain agent shows no loop (and reads no chain)
    status, _, body = await get(api, "/v1/loop?feed=%3Cscript%3E&limit=-1")
    assert status == 200 and body == {"loops": [], "more": False}
    # a node that has sent nothing lists no transmissions
    status, _, body = await get(api, "/v1/transmissions")
    assert status == 200 and body == {"transmissions": [], "next_before": None}
    # the feed list carries the spec's publishing rules the dashboard shows
    _, _, feeds = await get(api, "/v1/feeds")
    (feed,) = feeds["feeds"]
    assert feed["heartbeat_s"] > 0 and "deviation_bps" in feed and feed["spec_version"] >= 1


async def test_a_feed_id_ending_in_history_is_that_feed(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    text = (REPO / "feeds" / "sp500_forecast.toml").read_text()
    spec.write_text(text.replace(f'id = "{FEED}"', 'id = "SP500/history"', 1))
    config, feeds = load_node(node_config(tmp_path, f"sqlite:///{tmp_path / 'n.sqlite'}", spec))
    upgrade(make_engine(config.database.url))
    node = Node(config, feeds)
    await node.start()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{node.api.port}") as http:
            status, _, body = await get(http, "/v1/feeds/SP500/history")
            assert status == 200 and body["id"] == "SP500/history"
            status, _, body = await get(http, "/v1/feeds/SP500/history/history?limit=1")
            assert status == 200 and body["feed"] == "SP500/history"
    finally:
        await node.stop()
