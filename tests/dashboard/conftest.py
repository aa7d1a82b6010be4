"""One devnet and one browser for the dashboard's tests (module-scoped: CI time is tight).

The devnet runs in-process (oracle.devnet.Devnet) with the demo feed specs, one of them
given a hostile description, so the tests can check the page shows it as text, and the
docs' example policy feed (a bandit), so the learning-loop page has a policy to show. The browser
is Debian's chromium (``make browser`` installs it), driven by Playwright; Playwright's own
browser download is never used.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from oracle import bundle
from oracle.chain.deploy import at, deploy
from oracle.config import feed_id_bytes32
from oracle.devnet import Devnet, DevnetOptions, preflight
from oracle.devnet.processes import (
    free_block,
    node_config_toml,
    provision_committee,
    spawn_node,
    stop_node,
)
from oracle.storage import make_engine, upgrade

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "build" / "dashboard-screenshots"
HOSTILE = (
    '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>ETH/USD & <b>median</b>'
)


@dataclass
class Net:
    url: str  # the dashboard, .../ui/
    lines: list[str]
    apis: list[str]
    directory: Path
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("dashboard")
    feeds = tmp / "specs"
    shutil.copytree(bundle.locate(bundle.DEMO_FEEDS), feeds)
    eth = feeds / "eth_usd_median.toml"
    text, n = re.subn(r'(?m)^description = ".*"$', f"description = '{HOSTILE}'", eth.read_text())
    assert n == 1
    eth.write_text(text)
    # a policy feed too (the docs' example bandit), for the learning-loop page
    shutil.copy(REPO / "docs" / "examples" / "sp500_bandit.toml", feeds)
    base = free_block(16)
    opts = DevnetOptions(
        tmp / "devnet",
        nodes=3,
        anvil_port=base,
        price_port=base + 1,
        base_port=base + 4,
        feeds_dir=feeds,
        dashboard_port=base + 12,
    )
    lines: list[str] = []

    def say(text: str) -> bool:
        lines.append(text)
        return True

    preflight(opts)
    net = Devnet(opts)
    try:
        net.start(say=say, stop=threading.Event())
        consumers = subscribe_consumers(net)
        assert net.manifest is not None and net.market is not None
        yield Net(
            f"http://127.0.0.1:{opts.dashboard}/ui/",
            lines,
            [n.api for n in net.nodes],
            opts.directory,
            {
                "consumers": consumers,
                "rpc": net.manifest.rpc_url,
                "oracle": net.manifest.oracle,
                "manifest": net.manifest_path,
                "market": net.market,
            },
        )
    finally:
        net.stop()


def subscribe_consumers(net: Devnet) -> dict[str, str]:
    """Two consumers of ETH/USD, each with 1 ETH deposited by the deployer (anvil's unlocked
    account 0): one records its callbacks, one reverts every callback (CallbackFailed)."""
    assert net.manifest is not None
    w3 = Web3(Web3.HTTPProvider(net.manifest.rpc_url, request_kwargs={"timeout": 30}))
    owner = w3.eth.accounts[0]
    oracle = at(w3, "MiraOracle", net.manifest.oracle)
    eth_usd = feed_id_bytes32("ETH/USD")
    out = {}
    for name, args in (("recording", (oracle.address,)), ("reverting", ())):
        consumer = deploy(w3, f"{name.capitalize()}Consumer", *args, sender=owner)
        # RecordingConsumer stores each update: 500k gas covers its first (fresh slot) writes
        tx = oracle.functions.subscribe(consumer.address, [eth_usd], 500_000).transact(
            {"from": owner, "value": w3.to_wei(1, "ether")}
        )
        assert w3.eth.wait_for_transaction_receipt(tx, timeout=30)["status"] == 1
        out[name] = consumer.address
    return out


@pytest.fixture(scope="module")
def standalone(devnet: Net) -> Iterator[str]:
    """One more node, alone: ``mira node run`` with its own API (no devnet dashboard in
    front), following the devnet's chain with a fresh operator key (not a member: it signs
    nothing) and two of the devnet's specs: ETH/USD (hostile description included) and the
    RL loop's policy feed, whose chain source names the agent it shows. Its API URL."""
    base = free_block(2)
    d = devnet.directory / "standalone"
    (d / "feeds").mkdir(parents=True)
    for name in ("eth_usd_median.toml", "rl_bandit.toml"):
        shutil.copy(devnet.directory / "feeds" / name, d / "feeds" / name)
    committee = provision_committee([d], [Account.create().key.hex()], [(base, base + 1)])
    node = committee.nodes[0]
    node.index = 9  # named node-9 in its node.toml
    upgrade(make_engine(f"sqlite:///{d / 'node.sqlite'}"))
    (d / "node.toml").write_text(
        node_config_toml(
            node,
            database="node.sqlite",
            rpc_url=devnet.extra["rpc"],
            oracle=devnet.extra["oracle"],
            round_period=1.0,
            observe_timeout=0.5,
            transmit_timeout=5.0,
            rpc_timeout=3.0,
        )
    )
    spawn_node(node)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{node.api}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert node.proc is not None and node.proc.poll() is None, (d / "node.log").read_text()[
                -3000:
            ]
            assert time.monotonic() < deadline, "the standalone node did not serve its API"
            time.sleep(0.5)
        yield node.api
    finally:
        stop_node(node, 20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: the tests run as root (CI), where chromium's sandbox refuses to start
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@dataclass
class Page:
    """A browser page with every console error and uncaught exception recorded."""

    page: Any
    errors: list[str]


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    p = context.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    # which request failed (the console's message does not name it)
    p.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else 0)
    p.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    try:
        yield Page(p, errors)
    finally:
        context.close()


def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
