"""The web dashboard (/ui/) in a real browser against a live devnet: every page loads
without console errors, shows values that change over time, charts render with data,
links between pages work, a bad feed id gives the not-found page, and HTML in a feed
description is shown as text and never run. Screenshots of each page go to
build/dashboard-screenshots/."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from web3 import Web3

from oracle.chain.deploy import at
from oracle.cli.main import cli
from tests.dashboard.conftest import HOSTILE, REPO, Net, Page, screenshot

pytestmark = [pytest.mark.anvil, pytest.mark.slow, pytest.mark.timeout(300)]

PAGES = {
    "feeds": "Feeds",
    "committee": "Committee",
    "models": "Models",
    "subscriptions": "Subscriptions",
    "learning": "Learning loop",
}
WAIT_MS = 30_000


def show(p: Page, net: Net, route: str) -> Any:
    """Open ``#route`` and wait for its data to be drawn."""
    page = p.page
    page.goto(f"{net.url}#{route}")
    page.wait_for_selector('#content[aria-busy="false"]', timeout=WAIT_MS)
    return page


def until(read: Any, predicate: Any, what: str, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    value = read()
    while not predicate(value):
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last: {value!r}"
        time.sleep(0.5)
        value = read()
    return value


def http(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_devnet_prints_the_dashboard_url(devnet: Net) -> None:
    assert f"dashboard    {devnet.url}" in devnet.lines
    status, headers, body = http(devnet.url)
    assert status == 200
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b"<script>" not in body  # no inline script: the page is app.js only


def test_every_page_loads_without_console_errors(devnet: Net, page: Page) -> None:
    for route, title in PAGES.items():
        p = show(page, devnet, f"/{route}")
        assert p.text_content("h1") == title
        assert p.get_attribute(f'nav a[href="#/{route}"]', "aria-current") == "page"
        if route == "feeds":  # wait for the first round so the screenshot shows values
            until(
                lambda p=p: p.text_content("#feeds-table"),
                lambda t: "no round yet" not in t,
                "rounds",
            )
        if route == "models":  # no registry on this devnet: said so, beside what members run
            assert p.locator("#no-registry").count() == 1
            # one row per feed spec the devnet runs (its copies, the RL loop's included) and member
            specs = len(list((devnet.directory / "feeds").glob("*.toml")))
            assert specs >= 6 and p.locator("#models-table tbody tr").count() == specs * 3
        if route == "learning":  # the bandit's arm choices, as its model counts them
            pulls = until(
                lambda p=p: p.eval_on_selector_all(
                    "#arms-SP500-bandit tbody tr",
                    "rs => rs.map(r => [...r.cells].map(c => c.textContent))",
                ),
                lambda rows: len(rows) == 5 and sum(int(n) for _, n in rows) > 5,
                "the bandit's pulls",
            )
            assert {arm for arm, _ in pulls} == {"AAPL", "AMZN", "JPM", "KO", "MSFT"}
        screenshot(p, route)
    p = show(page, devnet, "/feed/SP500%2Fbandit")  # a policy feed: one on-chain feed per arm
    assert p.text_content("h1") == "SP500/bandit"
    arms = ["AAPL", "AMZN", "JPM", "KO", "MSFT"]
    legend = until(
        lambda p=p: p.eval_on_selector_all(
            "figure.chart >> nth=0 >> .legend li", "ls => ls.map(l => l.textContent)"
        ),
        lambda ls: all(
            any(x.startswith(f"{a} node-0 output (") and not x.endswith("(0)") for x in ls)
            for a in arms
        ),
        "every arm's outputs",
    )
    assert sum("on-chain" in x for x in legend) == 5
    assert p.locator("#proxies-table tbody tr").count() == 5
    screenshot(p, "feed-policy")
    p = show(page, devnet, "/feed/" + "SP500%2Fforecast-1")
    screenshot(p, "feed")
    # the README's picture (docs/dashboard.png is a copy of this one): the top of the page
    p.set_viewport_size({"width": 1100, "height": 760})
    screenshot(p, "readme", full_page=False)
    p.set_viewport_size({"width": 1280, "height": 860})
    p.click("#theme")
    assert p.get_attribute("html", "data-theme") in {"dark", "light"}
    screenshot(p, "feed-other-theme")
    assert page.errors == []


def test_values_change_over_time_without_reloading(devnet: Net, page: Page) -> None:
    p = show(page, devnet, "/committee")
    p.evaluate("window.__same_document = true")  # gone if the page reloads
    first = until(lambda: p.text_content("#current-round"), lambda t: t and t.isdigit(), "a round")
    until(lambda: p.text_content("#current-round"), lambda t: t != first, "the round to move")
    p = show(page, devnet, "/feeds")
    p.evaluate("window.__same_document = true")
    summary = p.text_content(".summary")
    until(lambda: p.text_content(".summary"), lambda t: t != summary, "the block to move")
    assert p.evaluate("window.__same_document") is True
    assert page.errors == []


def test_feed_page_charts_render_with_data(devnet: Net, page: Page) -> None:
    p = show(page, devnet, "/feed/ETH%2FUSD")
    # on-chain values, each member's outputs and the observations, as lines and dots
    until(
        lambda: p.eval_on_selector_all(
            "figure.chart:first-of-type polyline",
            "els => els.map(e => e.getAttribute('data-series'))",
        ),
        lambda names: "on-chain" in names and sum("output" in n for n in names) == 3,
        "on-chain and member series",
    )
    assert p.locator("figure.chart >> nth=0 >> circle").count() > 0  # observations
    assert int(p.get_attribute("figure.chart >> nth=0", "data-points") or 0) > 3
    # recent rounds with their transaction, gas and commitment; the proxy and how to read it
    rows = until(
        lambda: p.eval_on_selector_all(
            "#rounds-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
        ),
        lambda rs: any(r[5].isdigit() for r in rs),
        "a round with its gas",
    )
    assert any(re.fullmatch(r"0x[0-9a-f]{8}…[0-9a-f]{4}", r[3]) for r in rows)
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", p.text_content("#proxy-address") or "")
    assert "latestRoundData()" in (p.text_content("main pre") or "")
    # the forecast feed has a model error: its chart has data
    p = show(page, devnet, "/feed/SP500%2Fforecast-1")
    until(
        lambda: int(p.get_attribute("figure.chart >> nth=1", "data-points") or 0),
        lambda n: n > 0,
        "model errors",
    )
    assert page.errors == []


def test_links_between_pages(devnet: Net, page: Page) -> None:
    p = show(page, devnet, "/feeds")
    p.click("#feeds-table >> text=SP500/forecast-1")
    p.wait_for_selector('#content[aria-busy="false"]', timeout=WAIT_MS)
    assert p.text_content("h1") == "SP500/forecast-1"
    p.click('nav >> text="Committee"')
    p.wait_for_selector('#content[aria-busy="false"]', timeout=WAIT_MS)
    assert p.text_content("h1") == "Committee"
    p.click('nav >> text="Models"')
    p.wait_for_selector("#models-table", timeout=WAIT_MS)
    p.click("#models-table >> text=AIRLINE/passengers-12m >> nth=0")
    p.wait_for_selector('#content[aria-busy="false"]', timeout=WAIT_MS)
    assert p.text_content("h1") == "AIRLINE/passengers-12m"
    # by keyboard: the skip link first, then the brand and the first nav links
    p.keyboard.press("Tab")
    assert p.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(3):
        p.keyboard.press("Tab")
    assert p.evaluate("document.activeElement.textContent") == "Committee"
    p.keyboard.press("Enter")
    p.wait_for_selector('#content[aria-busy="false"]', timeout=WAIT_MS)
    assert p.text_content("h1") == "Committee"
    assert page.errors == []


def test_bad_feed_id_gives_the_not_found_page(devnet: Net, page: Page) -> None:
    for route in ("/feed/NO%2Fsuch-feed", "/feed/%E0%A4%A", "/no-such-page"):
        p = page.page
        p.goto(f"{devnet.url}#{route}")
        p.wait_for_selector("#not-found", timeout=WAIT_MS)
        assert p.text_content("h1") == "Not found"
    screenshot(p, "not-found")
    # the only errors logged are the APIs' 404s for the unknown feed
    assert all("404" in e for e in page.errors), page.errors
    # server side: unknown /ui/ paths are an HTML 404 page, unknown feeds a JSON 404
    status, headers, body = http(devnet.url + "feeds/NO-such-feed")
    assert status == 404 and headers["Content-Type"].startswith("text/html")
    assert "Content-Security-Policy" in headers and b"Not found" in body
    status, _, body = http(devnet.url.replace("/ui/", "/m/0/v1/feeds/NO/such"))
    assert status == 404 and json.loads(body)["error"]["message"] == "no feed 'NO/such'"


def test_html_in_a_feed_description_is_text_never_run(devnet: Net, page: Page) -> None:
    p = show(page, devnet, "/feeds")
    cell = p.locator("#feeds-table td .desc", has_text="onerror")
    assert cell.text_content() == HOSTILE
    assert p.locator("main img, main script, main b").count() == 0
    p = show(page, devnet, "/feed/ETH%2FUSD")
    assert p.text_content("#feed-description") == HOSTILE
    p.wait_for_timeout(1000)  # an onerror would have fired by now
    assert p.evaluate("window.__pwned") is None
    assert page.errors == []
    screenshot(p, "hostile-description")


def test_hostile_query_strings_are_400_json(devnet: Net) -> None:
    api = devnet.url.replace("/ui/", "/m/0")
    feed = api + "/v1/feeds/ETH%2FUSD/history"
    for query, says in [
        ("?limit=0", "limit must be from 1 to 500"),
        ("?limit=100000", "limit must be from 1 to 500"),
        ("?limit=-1", "limit must be a whole number"),
        ("?limit=1e3", "limit must be a whole number"),
        ("?before=%3Cscript%3E", "before must be a whole number"),
        ("?limit=1&limit=2", "pass limit at most once"),
    ]:
        status, _, body = http(feed + query)
        assert status == 400, (query, body)
        assert says in json.loads(body)["error"]["message"]
    status, _, body = http(api + "/v1/reports?feed=%3Cimg%20src%3Dx%3E")
    assert status == 400 and "unknown feed" in json.loads(body)["error"]["message"]
    status, _, body = http(api + "/v1/transmissions?before=0")
    assert status == 400
    # paging: two pages of 2 outputs follow each other, newest first
    first = until(
        lambda: json.loads(http(feed + "?limit=2")[2]),
        lambda body: body["next_before"] is not None and body["next_before"] > 1,
        "three outputs of ETH/USD",
    )
    seqs = [o["seq"] for o in first["outputs"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 2
    second = json.loads(http(feed + f"?limit=2&before={first['next_before']}")[2])
    assert all(o["seq"] < min(seqs) for o in second["outputs"])
    # the devnet's forwarder passes no other path and no stream
    assert http(devnet.url.replace("/ui/", "/m/0/metrics"))[0] == 404
    assert http(devnet.url.replace("/ui/", "/m/0/v1/reports/stream"))[0] == 404
    assert http(devnet.url.replace("/ui/", "/m/7/v1/feeds"))[0] == 404


def test_subscriptions_page_shows_consumers_deposits_and_callbacks(devnet: Net, page: Page) -> None:
    consumers = devnet.extra["consumers"]
    p = show(page, devnet, "/subscriptions")

    def rows() -> dict[str, list[str]]:
        cells = p.eval_on_selector_all(
            "#subscriptions-table tbody tr",
            "rs => rs.map(r => [...r.cells].map(c => c.textContent))",
        )
        return {r[0]: r for r in cells}

    table = until(rows, lambda t: set(t) == set(consumers.values()), "both consumers")
    recording, reverting = table[consumers["recording"]], table[consumers["reverting"]]
    assert recording[2] == reverting[2] == "ETH/USD"
    assert recording[3] == "500000" and reverting[4].endswith(" ETH")
    # the reverting consumer's callbacks fail, round after round, shown live
    bad = consumers["reverting"]
    first = int(until(rows, lambda t: int(t[bad][6]) > 0, "a failed callback")[bad][6])
    until(rows, lambda t: int(t[bad][6]) > first, "another failed callback", 60)
    assert rows()[consumers["recording"]][6] == "0"
    screenshot(p, "subscriptions")
    p = show(page, devnet, "/feeds")
    row = p.locator("#feeds-table tr", has_text="onerror")
    assert row.locator("td >> nth=9").text_content() == "2"  # subscribers
    assert page.errors == []


def test_a_node_alone_serves_its_own_view_and_the_chain(devnet: Net, page: Page) -> None:
    p = page.page
    p.goto(f"{devnet.apis[0]}/ui/#/committee")
    p.wait_for_selector('#content[aria-busy="false"]', timeout=WAIT_MS)
    names = p.eval_on_selector_all(
        "#members-table tbody tr td:first-child", "c => c.map(x => x.textContent)"
    )
    assert names == ["node-0"]  # this node only (its name in the devnet's node.toml)
    p.goto(f"{devnet.apis[0]}/ui/#/feeds")
    p.wait_for_selector('#content[aria-busy="false"]', timeout=WAIT_MS)
    assert "chain 31337, block" in (p.text_content(".summary") or "")
    members = p.eval_on_selector_all(
        "#feeds-table tbody tr td:last-child", "c => c.map(x => x.textContent)"
    )
    assert members and all(m.endswith("/ 1") for m in members)
    assert page.errors == []


def api_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:  # a node's read of the chain
        status, body = r.status, r.read()
    assert status == 200, (url, body[:300])
    return json.loads(body)


def test_learning_loop_page_shows_the_agent_against_random_and_the_best_arm(
    devnet: Net, page: Page
) -> None:
    p = show(page, devnet, "/learning")
    ids = {k: f"#loop-RL-bandit-{k}-reward" for k in ("agent", "random", "best")}

    def numbers() -> dict[str, str]:
        return {k: p.text_content(sel) or "" for k, sel in ids.items()}

    def numeric(v: dict[str, str]) -> bool:
        return all(re.fullmatch(r"\d+\.\d", x) for x in v.values())

    first = until(numbers, numeric, "the three cumulative rewards", 60)
    # the three move as the agents act, block after block, without reloading
    until(
        numbers,
        lambda v: (
            numeric(v)
            and all(float(v[k]) > float(first[k]) for k in ("agent", "best"))
            and float(v["random"]) >= float(first["random"])
        ),
        "the cumulative rewards to grow",
        60,
    )
    # charts with data: the three cumulative rewards, the regret, the arm choices
    legend = p.eval_on_selector_all(
        "#loop-RL-bandit-rewards .legend li", "ls => ls.map(l => l.textContent)"
    )
    names = [x.rsplit(" (", 1)[0] for x in legend]
    assert names == ["agent", "random agent", "best arm (expected)"]
    assert all(not x.endswith("(0)") for x in legend), legend
    assert int(p.get_attribute("#loop-RL-bandit-regret-chart figure", "data-points") or 0) > 0
    assert int(p.get_attribute("#loop-RL-bandit-choices figure", "data-points") or 0) > 0
    pulls = p.eval_on_selector_all(
        "#loop-RL-bandit-pulls tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [r[0] for r in pulls] == ["a (0)", "b (1)", "c (2)", "d (3)", "e (4)"]
    screenshot(p, "learning")
    # the numbers are the chain's: the agent's reward is its balance in its bandit at the
    # block the node scanned to, and the best arm's is the schedule's over its pulls
    loop = next(
        x
        for x in api_json(devnet.url.replace("/ui/", "/m/1/v1/loop"))["loops"]
        if x["feed"] == "RL/bandit"
    )
    market = devnet.extra["market"]
    agent, rand = loop["agent"], loop["random"]
    assert agent["address"] == market.agent.address
    assert agent["environment"] == market.bandit.address
    assert rand["address"] == market.random_agent.address
    assert rand["environment"] == market.random_bandit.address
    at_block = {"block_identifier": agent["scanned_to_block"]}
    balance = market.bandit.functions.balanceOf(market.agent.address).call(**at_block)
    assert agent["reward"] == balance / 10**8
    assert agent["steps"] == market.bandit.functions.pulls().call(**at_block)
    assert agent["first_pull"] == 1 and agent["ignored"] == 0
    schedule = market.schedule
    best = sum(schedule.rate(n, schedule.best_arm(n)) for n in range(1, agent["steps"] + 1))
    assert agent["best_arm_reward"] == best / 10**6
    assert sum(agent["pulls"]) == agent["steps"] and agent["regret"] >= 0
    assert page.errors == []


def test_subscriptions_page_counts_delivered_callbacks(devnet: Net, page: Page) -> None:
    consumers = devnet.extra["consumers"]
    good, bad = consumers["recording"], consumers["reverting"]
    p = show(page, devnet, "/subscriptions")

    def delivered() -> dict[str, str]:
        cells = p.eval_on_selector_all(
            "#subscriptions-table tbody tr",
            "rs => rs.map(r => [...r.cells].map(c => c.textContent))",
        )
        return {r[0]: r[5] for r in cells}

    first = until(
        delivered, lambda t: t.get(good, "-").isdigit() and int(t[good]) > 0, "a delivery"
    )
    until(delivered, lambda t: int(t[good]) > int(first[good]), "another delivery", 60)
    assert delivered()[bad] == "0"  # every callback of the reverting consumer fails
    assert "no event for a delivered callback" in (p.text_content("#delivered-meaning") or "")
    screenshot(p, "subscriptions-delivered")
    # the derived count is the consumer's own: RecordingConsumer counts its calls
    chain = api_json(devnet.url.replace("/ui/", "/m/2/v1/chain"))
    subs = chain["subscriptions"]
    assert subs["callbacks_counted_from_block"] == 0  # a young chain: counted from genesis
    by = {c["consumer"]: c["callbacks"] for c in subs["consumers"]}
    w3 = Web3(Web3.HTTPProvider(devnet.extra["rpc"]))
    recording = at(w3, "RecordingConsumer", good)
    calls = recording.functions.calls().call(block_identifier=subs["callbacks_counted_to_block"])
    assert calls > 0 and by[good] == {
        "delivered": calls,
        "failed": 0,
        "skipped": 0,
        "unexplained": 0,
    }
    assert by[bad]["delivered"] == 0 and by[bad]["failed"] > 0 and by[bad]["unexplained"] == 0
    assert subs["unreadable_reports"] == 0
    assert page.errors == []


def test_models_page_shows_a_registered_model_and_each_members_acceptance(
    devnet: Net, page: Page, tmp_path: Path
) -> None:
    spec = (REPO / "docs" / "examples" / "trump_approval.toml").read_text()
    spec = re.sub(r"(?m)^start_ms = \d+$", f"start_ms = {int(time.time()) * 1000}", spec)
    spec = re.sub(r'(?m)^description = ".*"$', f"description = '{HOSTILE}'", spec)
    (tmp_path / "trump.toml").write_text(spec)
    owner = devnet.directory / "owner"
    keys = ["--manifest", str(devnet.extra["manifest"]), "--keys-dir", str(owner),
            "--passphrase-file", str(owner / "passphrase"), "--json"]  # fmt: skip
    runner = CliRunner()
    done = runner.invoke(cli, ["model", "register", str(tmp_path / "trump.toml"), "--embed", *keys])
    assert done.exit_code == 0, done.output
    model_id = json.loads(done.output)["model_id"]
    done = runner.invoke(cli, ["model", "approve", str(model_id), *keys])
    assert done.exit_code == 0, done.output
    p = show(page, devnet, "/models")

    def registry() -> list[list[str]]:
        return p.eval_on_selector_all(
            "#registry-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
        )

    rows = until(
        registry,
        lambda rs: any(
            r[0] == str(model_id) and all(f"node-{i}: running" in r[7] for i in range(3))
            for r in rs
        ),
        "every member running the registered model",
        90,
    )
    row = next(r for r in rows if r[0] == str(model_id))
    assert row[1] == "1" and row[2] == "TRUMP/approval" and row[5].isdigit()  # approved block
    assert re.fullmatch(r"0x[0-9a-f]{8}…[0-9a-f]{4}", row[6])  # its model commitment
    screenshot(p, "models-registered")
    # the node lists the registered model's feed on-chain without a restart (GET /v1/chain)
    chain_url = devnet.url.replace("/ui/", "/m/0/v1/chain")
    feeds = until(
        lambda: {f["id"]: f for f in api_json(chain_url)["feeds"]},
        lambda fs: "TRUMP/approval" in fs and "round" in fs["TRUMP/approval"],
        "the registered feed's first round on-chain",
        90,
    )
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", feeds["TRUMP/approval"]["proxy"])
    # its description, HTML from the spec, is text on its page
    p = show(page, devnet, "/feed/TRUMP%2Fapproval")
    assert p.text_content("#feed-description") == HOSTILE
    p.wait_for_timeout(1000)
    assert p.evaluate("window.__pwned") is None
    # deactivated: the feed leaves the chain view as it leaves the node, no restart either
    done = runner.invoke(cli, ["model", "deactivate", str(model_id), *keys])
    assert done.exit_code == 0, done.output
    until(
        lambda: {f["id"] for f in api_json(chain_url)["feeds"]},
        lambda ids: "TRUMP/approval" not in ids,
        "the deactivated feed to leave the chain view",
        60,
    )
    assert page.errors == []


def test_a_standalone_node_serves_every_page(devnet: Net, standalone: str, page: Page) -> None:
    p = page.page
    for route, title in PAGES.items():
        p.goto(f"{standalone}/ui/#/{route}")
        p.wait_for_selector('#content[aria-busy="false"]', timeout=WAIT_MS)
        assert p.text_content("h1") == title
        screenshot(p, f"standalone-{route}")
    # values shown: its feeds with their outputs and the chain's rounds
    p.goto(f"{standalone}/ui/#/feeds")
    p.wait_for_selector('#content[aria-busy="false"]', timeout=WAIT_MS)
    rows = until(
        lambda: p.eval_on_selector_all(
            "#feeds-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
        ),
        lambda rs: (
            len(rs) == 2 and all(r[-1] == "1 / 1" for r in rs) and any(r[3].isdigit() for r in rs)
        ),
        "its two feeds with outputs and an on-chain round",
        60,
    )
    assert {r[0] for r in rows} == {"ETH/USD", "RL/bandit"}
    assert p.locator("main img, main script, main b").count() == 0
    # the committee page: this node alone, not a member of the devnet's committee
    p.goto(f"{standalone}/ui/#/committee")
    p.wait_for_selector('#content[aria-busy="false"]', timeout=WAIT_MS)
    member = p.eval_on_selector_all(
        "#members-table tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [r[0] for r in member] == ["node-9"] and "not a member" in member[0][2]
    # the learning loop: found from its policy feed's chain source alone, moving
    p.goto(f"{standalone}/ui/#/learning")
    first = until(
        lambda: p.text_content("#loop-RL-bandit-agent-reward") or "",
        lambda t: re.fullmatch(r"\d+\.\d", t) is not None,
        "the agent's reward",
        60,
    )
    until(
        lambda: p.text_content("#loop-RL-bandit-steps") or "",
        lambda t: t.split(" / ")[0].isdigit() and int(t.split(" / ")[0]) > 0,
        "the agent's steps",
    )
    assert re.fullmatch(r"\d+\.\d", p.text_content("#loop-RL-bandit-random-reward") or "")
    assert re.fullmatch(r"\d+\.\d", first)
    screenshot(p, "standalone-learning")
    assert page.errors == []
