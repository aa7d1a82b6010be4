"""``mira devnet``: anvil, the contracts, a committee of node processes and the demo feeds'
price sources on one machine.

The launcher writes each member's keys and proposes the committee on-chain; the node
processes run the DKG among themselves over p2p and propose the group key; the launcher,
as the oracle's owner, activates it (``oracle.chain.rotation``). No key share is ever
made or seen outside its node.

The devnet survives an unclean stop of its launcher (``oracle.children``): anvil and the
nodes get a signal from the kernel when the launcher ends, however it ends; each child is
recorded with its start time in ``devnet.json``, so ``mira devnet down`` stops what a dead
launcher left, and ``mira devnet up`` in that directory does the same first, then starts
from fresh node directories (new keys, no key share of the previous chain).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from oracle import artifacts, bundle
from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.chain.deploy import at
from oracle.chain.rotation import KeyProposals, activate_when_proposed, propose_committee
from oracle.chain.system import (
    FeedRegistration,
    Manifest,
    Sender,
    deploy_system,
    feed_registrations,
    register_feed,
)
from oracle.chain.toolchain import tool
from oracle.children import Recorded, pid_alive, stop_all
from oracle.config import load_feed_specs
from oracle.config.feeds import FeedSpec
from oracle.devnet import rl
from oracle.devnet.processes import (
    BackgroundLoop,
    NodeProc,
    node_config_toml,
    port_free,
    provision_committee,
    spawn_node,
    stop_node,
    write_operator_key,
)
from oracle.errors import MiraError
from oracle.progress import Progress, no_progress
from oracle.service import NODE_STOP_BOUND_S
from oracle.storage import make_engine, upgrade

HEARTBEAT_S = 10  # every demo feed's heartbeat on the devnet, so rounds land visibly
RL_DRIFT_EVERY = 300  # the RL bandit's best arm changes every 300 agent steps (~5 min)
# the pull example (docs/pull.md): a lending market priced by a pulled ETH/USD value
PULL_EXAMPLE_FEED = "ETH/USD"
PULL_EXAMPLE_MAX_AGE_S = 60
PULL_EXAMPLE_LTV_BPS = 8_000
PIDFILE = "devnet.pid"
STATEFILE = "devnet.json"
# The median feed's three local HTTP sources: (path, JSON body for a price).
PRICE_SOURCES: list[tuple[str, Any]] = [
    ("/price", lambda p: {"data": {"price": p}}),
    ("/ticker", lambda p: {"result": [{"last": p}]}),
    ("/v1/eth", lambda p: {"usd": p}),
]


class DevnetError(MiraError):
    """The devnet cannot start or stop; the message says what to do."""


class Interrupted(Exception):
    """A stop was asked for (Ctrl-C, SIGTERM) while the devnet was starting."""


@dataclass
class DevnetOptions:
    directory: Path
    nodes: int = 4
    anvil_port: int = 8545
    base_port: int = 7700  # node i: API base_port + 2i, p2p base_port + 2i + 1
    price_port: int = 9101  # the median feed's sources: price_port, +1, +2
    feeds_dir: Path = field(default_factory=lambda: bundle.locate(bundle.DEMO_FEEDS))
    round_period_s: float = 1.0
    dashboard_port: int | None = None  # None: the port after the nodes' block
    # the RL loop's real-data market too (21 more feeds: ~30 s more to start)
    stocks: bool = False

    @property
    def dashboard(self) -> int:
        return self.dashboard_port or self.base_port + 2 * self.nodes

    def node_ports(self) -> list[tuple[int, int]]:
        return [(self.base_port + 2 * i, self.base_port + 2 * i + 1) for i in range(self.nodes)]

    def price_ports(self) -> list[int]:
        return [self.price_port + i for i in range(len(PRICE_SOURCES))]


# -- preflight ------------------------------------------------------------------------------


def _state(directory: Path) -> dict[str, Any]:
    try:
        raw = json.loads((directory / STATEFILE).read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def running_launcher(directory: Path) -> Recorded | None:
    """The live ``mira devnet up`` of ``directory``, if any (a reused pid is not)."""
    try:
        pid = int((directory / PIDFILE).read_text().strip())
    except (OSError, ValueError):
        return None
    launcher = _state(directory).get("launcher")
    if isinstance(launcher, dict) and launcher.get("pid") == pid:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            recorded = Recorded.from_json(launcher)  # with its start time: not a reused pid
            return recorded if recorded.alive() else None
    return Recorded(pid, None, "the launcher") if pid_alive(pid) else None


def running_pid(directory: Path) -> int | None:
    """The pid of a live ``mira devnet up`` in ``directory``, if any."""
    launcher = running_launcher(directory)
    return None if launcher is None else launcher.pid


def recorded_children(directory: Path) -> list[Recorded]:
    """anvil and the nodes as the launcher recorded them when it started each."""
    children = []
    for raw in _state(directory).get("children", []):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            children.append(Recorded.from_json(raw))
    return children


def stop_leftovers(directory: Path) -> list[Recorded]:
    """Stop the recorded children still running (their launcher is gone); return them.
    Raise DevnetError naming any that would not stop."""
    live = [c for c in recorded_children(directory) if c.alive()]
    left = stop_all(live, timeout=NODE_STOP_BOUND_S)
    if left:
        names = ", ".join(map(str, left))
        raise DevnetError(f"processes of the devnet in {directory} would not stop: {names}")
    return live


def reclaim(directory: Path) -> str | None:
    """Before ``up``: stop what a previous devnet's dead launcher left in ``directory``;
    the line to print, if there was anything."""
    stopped = stop_leftovers(directory)
    (directory / STATEFILE).unlink(missing_ok=True)
    (directory / PIDFILE).unlink(missing_ok=True)
    if not stopped:
        return None
    return (
        f"the previous devnet in {directory} was not stopped (its launcher is gone): "
        f"stopped {', '.join(map(str, stopped))}"
    )


def preflight(opts: DevnetOptions) -> list[str]:
    """Raise DevnetError with one line saying what to do if the devnet cannot start. A dead
    devnet's leftovers in the directory are stopped first; the lines returned say so."""
    d = opts.directory
    pid = running_pid(d)
    if pid is not None:
        raise DevnetError(
            f"a devnet is already running in {d} (pid {pid}); run `mira devnet down --dir {d}`"
        )
    if not 1 <= opts.nodes <= 20:
        raise DevnetError(f"--nodes {opts.nodes}: expected 1 to 20 nodes")
    notes = [note] if d.is_dir() and (note := reclaim(d)) else []
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise DevnetError(
            f"cannot write to devnet directory {d} ({exc.strerror}); "
            "choose a writable one with --dir"
        ) from exc
    tool("anvil")  # ToolchainError says to run `make setup`
    artifacts.load("MiraOracle")  # ChainError says to run `make contracts`
    ports = [("anvil", opts.anvil_port, "--anvil-port")]
    for i, (api, p2p) in enumerate(opts.node_ports()):
        ports += [(f"node {i} API", api, "--base-port"), (f"node {i} p2p", p2p, "--base-port")]
    ports += [(f"price source {p}", p, "--price-port") for p in opts.price_ports()]
    ports.append(("dashboard", opts.dashboard, "--dashboard-port"))
    for what, port, option in ports:
        if not 0 < port < 65536:
            raise DevnetError(f"{what} port {port} is out of range; pick another with {option}")
        if not port_free(port):
            raise DevnetError(
                f"port {port} ({what}) is already in use; stop whatever listens there "
                f"or pick another with {option}"
            )
    return notes


# -- the median feed's price sources ---------------------------------------------------------


class PriceSources:
    """Three HTTP JSON endpoints serving one ETH/USD random walk, each with a little noise
    of its own, on ``ports``."""

    def __init__(self, loop: BackgroundLoop, ports: list[int], start: float = 2000.0) -> None:
        self.loop, self.ports = loop, ports
        self.price = start
        self.rng = random.Random()  # noqa: S311 (a demo price walk)
        self.runners: list[web.AppRunner] = []
        self._walker: asyncio.Task[None] | None = None

    def step(self) -> None:
        self.price = max(1.0, self.price * (1 + self.rng.gauss(0, 0.002)))

    async def _start(self) -> None:
        for port, (path, body) in zip(self.ports, PRICE_SOURCES, strict=True):

            async def handler(_: web.Request, body: Any = body) -> web.Response:
                noisy = self.price * (1 + self.rng.uniform(-0.0002, 0.0002))
                return web.json_response(body(round(noisy, 2)))

            app = web.Application()
            app.router.add_get(path, handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self.runners.append(runner)
        self._walker = asyncio.get_running_loop().create_task(self._walk())

    async def _walk(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.step()

    def start(self) -> None:
        self.loop.run(self._start())

    def stop(self) -> None:
        async def cleanup() -> None:
            if self._walker is not None:
                self._walker.cancel()
            for r in self.runners:
                await r.cleanup()

        with contextlib.suppress(Exception):
            self.loop.run(cleanup(), timeout=10)


# -- feed specs and node configs --------------------------------------------------------------

_HEARTBEAT = re.compile(r"^heartbeat_s\s*=\s*\d+\s*$", re.M)
_LOCAL_URL = re.compile(r"http://127\.0\.0\.1:(910[1-3])")


_REPLAY_KEYS = re.compile(r"^(step_ms|start_ms|passes|realtime)\s*=.*\n", re.M)


def devnet_spec_text(text: str, price_ports: list[int], start_ms: int) -> str:
    """A demo spec as the devnet runs it: heartbeat at most HEARTBEAT_S; the median feed's
    sources pointed at the devnet's price ports; a replay released in real time, one row a
    second from ``start_ms`` (the same on every node, so the nodes agree row by row)."""
    if re.search(r'^kind\s*=\s*"replay"', text, re.M):
        text = _REPLAY_KEYS.sub("", text)
        text = re.sub(
            r'^(kind\s*=\s*"replay"\s*)$',
            rf"\1\nrealtime = true\nstart_ms = {start_ms}\nstep_ms = 1000\npasses = 1000",
            text,
            count=1,
            flags=re.M,
        )

    def heartbeat(m: re.Match[str]) -> str:
        value = int(m.group(0).split("=")[1])
        return f"heartbeat_s = {min(value, HEARTBEAT_S)}"

    text = _HEARTBEAT.sub(heartbeat, text)
    return _LOCAL_URL.sub(lambda m: f"http://127.0.0.1:{price_ports[int(m.group(1)) - 9101]}", text)


@dataclass
class Devnet:
    """A running devnet; ``start`` brings it up, ``stop`` tears everything down."""

    opts: DevnetOptions
    anvil: Anvil | None = None
    loop: BackgroundLoop | None = None
    prices: PriceSources | None = None
    dashboard: web.AppRunner | None = None
    nodes: list[NodeProc] = field(default_factory=list)
    manifest: Manifest | None = None
    specs: list[FeedSpec] = field(default_factory=list)
    market: rl.Market | None = None
    stocks: rl.StockLoop | None = None
    _stop_event: threading.Event | None = None
    _actor: threading.Thread | None = None
    _actor_stop: threading.Event = field(default_factory=threading.Event)

    @property
    def manifest_path(self) -> Path:
        return self.opts.directory / "manifest.json"

    def start(
        self,
        say: Any = print,
        stop: threading.Event | None = None,
        progress: Progress = no_progress,
    ) -> None:
        """Bring the devnet up. ``stop`` set meanwhile (Ctrl-C) raises :class:`Interrupted`
        at the next step or poll; the caller then calls :meth:`stop`."""
        opts, d = self.opts, self.opts.directory
        self._stop_event = stop
        (d / PIDFILE).write_text(f"{os.getpid()}\n")
        self._save_state()
        clean_previous(d)
        # the demo specs as the devnet runs them
        spec_dir = d / "feeds"
        spec_dir.mkdir(exist_ok=True)
        sources = sorted(opts.feeds_dir.glob("*.toml"))
        if not sources:
            raise DevnetError(f"no feed specs in {opts.feeds_dir}")
        start_ms = int(time.time() * 1000)
        for path in sources:
            (spec_dir / path.name).write_text(
                devnet_spec_text(path.read_text(), opts.price_ports(), start_ms)
            )
        self.specs = load_feed_specs(sorted(spec_dir.glob("*.toml")))

        self._check_stop()
        self.anvil = Anvil(
            AnvilConfig(
                # the owner, the members, the RL actor and a borrower for the pull example
                port=opts.anvil_port,
                block_time=1.0,
                accounts=opts.nodes + 3,
                die_with_parent=True,
            )
        ).start()
        self._save_state()
        self._check_stop()
        rpc = self.anvil.url
        w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
        deployer = Account.from_key(self.anvil.private_keys[0])
        feeds = feed_registrations(self.specs)
        manifest = deploy_system(w3, deployer, rpc, feeds)
        say(f"anvil        {rpc} (chain id {manifest.chain_id}, 1 s blocks)")
        say(f"MiraOracle   {manifest.oracle}")
        say(f"registry     {manifest.model_registry} (ModelRegistry, the oracle's registrar)")
        self._check_stop()
        pull = manifest.extra["pull"] = self._deploy_pull_example(
            w3, deployer, manifest, Account.from_key(self.anvil.private_keys[opts.nodes + 2])
        )
        say(
            f"pull         MiraPullVerifier {manifest.pull_verifier}; example consumer "
            f"PullLendingMarket {pull['lending_market']} (borrows priced by a pulled ETH/USD)"
        )
        # the owner's key as a key directory, so `mira model approve` (and every owner
        # command) works against the devnet: anvil's first account, a well-known dev key
        owner_keys = write_operator_key(d / "owner", self.anvil.private_keys[0]).directory
        say(f"owner keys   {owner_keys} (--keys-dir; --passphrase-file {owner_keys}/passphrase)")
        self._check_stop()
        self.market = self._deploy_rl(w3, Sender(w3, deployer), manifest, rpc, spec_dir)
        say(
            f"RL loop      agent {self.market.agent.address} in a {len(rl.ARMS)}-armed bandit "
            f"(drifts every {RL_DRIFT_EVERY} steps); random agent "
            f"{self.market.random_agent.address}"
        )
        if opts.stocks:
            self._check_stop()
            self.stocks = self._deploy_stocks(w3, Sender(w3, deployer), manifest, rpc, spec_dir)
            say(
                f"RL stocks    agent {self.stocks.agent.address} in a StockMarket on "
                f"{len(rl.TICKERS)} SP500Stocks price feeds (closes rebased to 100, a trading "
                "day a second)"
            )

        self._check_stop()
        committee = provision_committee(
            [d / f"node{i}" for i in range(opts.nodes)],
            self.anvil.private_keys[1 : opts.nodes + 1],
            opts.node_ports(),
        )
        oracle = at(w3, "MiraOracle", manifest.oracle)
        owner = Sender(w3, deployer)
        epoch, _ = propose_committee(oracle, owner.send, committee.threshold, committee.members)
        t = committee.threshold
        say(f"committee    proposed for epoch {epoch}: threshold {t} of {opts.nodes}")

        self.loop = BackgroundLoop()
        self.prices = PriceSources(self.loop, opts.price_ports())
        self.prices.start()
        say("prices       " + ", ".join(f"http://127.0.0.1:{p}" for p in opts.price_ports()))

        for node in committee.nodes:
            self._check_stop()
            self._write_node(node, rpc, manifest, spec_dir)
            spawn_node(node)
            self.nodes.append(node)
            self._save_state()
        say(f"DKG          {opts.nodes} node processes, over p2p; waiting for their group key")
        seen: dict[str, KeyProposals] = {}

        def proposals(state: KeyProposals) -> None:
            seen["last"] = state
            progress("DKG: members whose group key is on-chain", len(state.by_member), state.size)
            self._check_stop()

        activate_when_proposed(oracle, owner.send, timeout=120.0, progress=proposals)
        votes = seen["last"].best()[1]  # t + f or more (oracle.chain.rotation)
        say(f"epoch        {epoch} active: the key {votes} of {opts.nodes} members proposed")
        manifest.extra["nodes"] = [
            {"name": f"node-{n.index}", "api": n.api, "p2p": f"http://127.0.0.1:{n.p2p_port}",
             "operator": n.operator, "dir": str(n.dir)}
            for n in self.nodes
        ]  # fmt: skip
        manifest.extra["dkg"] = "run by the node processes over p2p; activated by the owner"
        manifest.extra["threshold"] = committee.threshold
        for spec in self.specs:
            for out in spec.outputs:
                manifest.feeds[out.id]["heartbeat_s"] = spec.heartbeat_s
                manifest.feeds[out.id]["tolerance_bps"] = spec.tolerance_bps
        self.dashboard = self.loop.run(
            _serve_dashboard([(f"node-{n.index}", n.api) for n in self.nodes], opts.dashboard)
        )
        manifest.extra["dashboard"] = f"http://127.0.0.1:{opts.dashboard}/ui/"
        manifest.write(self.manifest_path)
        self.manifest = manifest
        self._start_actor(w3, Account.from_key(self.anvil.private_keys[opts.nodes + 1]).address)
        for n in self.nodes:
            say(f"node-{n.index}       {n.api}  (log {n.dir / 'node.log'})")
        for feed_id, entry in manifest.feeds.items():
            say(f"feed         {feed_id:<24} proxy {entry['proxy']}")
        say(f"manifest     {self.manifest_path}")
        say(f"dashboard    {manifest.extra['dashboard']}")

    @staticmethod
    def _deploy_pull_example(
        w3: Web3, deployer: LocalAccount, manifest: Manifest, borrower: LocalAccount
    ) -> dict[str, Any]:
        """docs/pull.md's example consumer on the devnet: a PullLendingMarket whose borrows
        are priced by an ETH/USD value the borrower pulls from any member (at most 60 s old,
        80 % loan-to-value), and the address of an anvil account nothing else here sends
        from, for trying it (anvil signs for its own accounts: ``cast send --unlocked``)."""
        eth_usd = manifest.feeds[PULL_EXAMPLE_FEED]
        market = Sender(w3, deployer).deploy(
            "PullLendingMarket",
            manifest.pull_verifier,
            bytes.fromhex(eth_usd["feed_id"][2:]),
            eth_usd["decimals"],
            PULL_EXAMPLE_MAX_AGE_S,
            PULL_EXAMPLE_LTV_BPS,
        )
        return {
            "lending_market": market.address,
            "feed": PULL_EXAMPLE_FEED,
            "max_price_age_s": PULL_EXAMPLE_MAX_AGE_S,
            "ltv_bps": PULL_EXAMPLE_LTV_BPS,
            "borrower": borrower.address,
        }

    def _deploy_rl(
        self, w3: Web3, sender: Sender, manifest: Manifest, rpc: str, spec_dir: Path
    ) -> rl.Market:
        """The RL loop's contracts, its policy feeds (a small history: the agent reads
        every arm each step) and its spec, whose source is the agent's Step events."""
        _register_small(sender, manifest, rl.policy_feeds())
        market = rl.deploy_market(
            w3, manifest.oracle, sender.deploy, sender.send, drift_every=RL_DRIFT_EVERY
        )
        text = rl.spec_text(
            rpc,
            market.agent.address,
            market.from_block,
            heartbeat_s=HEARTBEAT_S,
            random_agent=market.random_agent.address,
        )
        (spec_dir / "rl_bandit.toml").write_text(text)
        self.specs = load_feed_specs(sorted(spec_dir.glob("*.toml")))
        manifest.extra["rl"] = {
            "feed": rl.FEED,
            "agent": market.agent.address,
            "bandit": market.bandit.address,
            "random_agent": market.random_agent.address,
            "random_bandit": market.random_bandit.address,
            "rates_ppm": list(market.rates_ppm),
            "drift_every": market.drift_every,
        }
        return market

    def _deploy_stocks(
        self, w3: Web3, sender: Sender, manifest: Manifest, rpc: str, spec_dir: Path
    ) -> rl.StockLoop:
        """The real-data market: the ten price feeds (the SP500Stocks replay, a trading day
        a second from now, the same clock at every member), the stock policy's feeds, the
        StockMarket and its agents, and both specs."""
        policy = rl.policy_feeds(rl.STOCK_FEED, rl.TICKERS)
        _register_small(sender, manifest, [*rl.price_feeds(), *policy])
        stocks = rl.deploy_stock_market(w3, manifest.oracle, sender.deploy, sender.send)
        start_ms = int(time.time() * 1000)
        (spec_dir / "sp500_prices.toml").write_text(rl.price_spec_text(start_ms, realtime=True))
        text = rl.stock_spec_text(
            rpc, stocks.agent.address, stocks.from_block, heartbeat_s=HEARTBEAT_S
        )
        (spec_dir / "rl_stocks.toml").write_text(text)
        self.specs = load_feed_specs(sorted(spec_dir.glob("*.toml")))
        manifest.extra["rl_stocks"] = {
            "feed": rl.STOCK_FEED,
            "prices": rl.PRICE_FEED,
            "tickers": list(stocks.tickers),
            "agent": stocks.agent.address,
            "market": stocks.market.address,
        }
        return stocks

    def _start_actor(self, w3: Web3, account: str) -> None:
        """Make both agents act once a block, on whatever policy is on-chain: the agent
        does not wait for the loop (a refused step, e.g. before the prior, is retried at
        the next block)."""
        assert self.market is not None
        actors = [rl.Actor(w3, self.market, account)]
        if self.stocks is not None:
            actors.append(rl.Actor(w3, self.stocks, account))

        def run() -> None:
            last = -1
            while not self._actor_stop.wait(0.2):
                with contextlib.suppress(Exception):  # anvil going away at stop
                    block = int(w3.eth.block_number)
                    if block > last:
                        for actor in actors:
                            if actor.ready():
                                actor.act(1)
                        last = block

        self._actor = threading.Thread(target=run, name="rl-actor", daemon=True)
        self._actor.start()

    def _write_node(self, node: NodeProc, rpc: str, manifest: Manifest, spec_dir: Path) -> None:
        feeds = node.dir / "feeds"
        feeds.mkdir(parents=True, exist_ok=True)
        for path in spec_dir.glob("*.toml"):
            (feeds / path.name).write_text(path.read_text())
        database = node.dir / "node.sqlite"
        database.unlink(missing_ok=True)
        upgrade(make_engine(f"sqlite:///{database}"))
        (node.dir / "node.toml").write_text(
            node_config_toml(
                node,
                database="node.sqlite",
                rpc_url=rpc,
                oracle=manifest.oracle,
                pull_verifier=manifest.pull_verifier,
                round_period=self.opts.round_period_s,
                observe_timeout=0.5,
                transmit_timeout=5.0,
                rpc_timeout=3.0,
                # every member follows the registry: an approved model runs without a
                # restart (docs/registered-models.md); 1 s blocks, so 1 confirmation
                model_registry=manifest.model_registry or None,
                models={
                    "confirmations": 1,
                    "poll_s": 0.5,
                    "from_block": manifest.deployed_at_block,
                    "switch_after_s": 10.0,
                },
            )
        )

    def _check_stop(self) -> None:
        if self._stop_event is not None and self._stop_event.is_set():
            raise Interrupted

    def _save_state(self) -> None:
        """Record the launcher and every child started so far, each with its start time,
        so that ``mira devnet down`` finds them if this process dies."""
        children = [Recorded.of(n.proc.pid, f"node-{n.index}") for n in self.nodes if n.proc]
        if self.anvil is not None and self.anvil.pid is not None:
            children.append(Recorded.of(self.anvil.pid, "anvil"))
        state = {
            "launcher": Recorded.of(os.getpid(), "the launcher").to_json(),
            "children": [c.to_json() for c in children],
        }
        path = self.opts.directory / STATEFILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state) + "\n")
        os.replace(tmp, path)  # never a half-written record

    def stop(self, node_timeout: float = NODE_STOP_BOUND_S) -> None:
        """The actor, nodes (SIGTERM, then SIGKILL after ``node_timeout``), price sources,
        anvil."""
        self._actor_stop.set()
        if self._actor is not None:
            self._actor.join(timeout=5)
        for node in self.nodes:  # all at once, then wait for each
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGTERM)
        for node in self.nodes:
            with contextlib.suppress(Exception):
                stop_node(node, node_timeout)
        if self.prices is not None:
            self.prices.stop()
        if self.dashboard is not None and self.loop is not None:
            with contextlib.suppress(Exception):
                self.loop.run(self.dashboard.cleanup(), timeout=10)
        if self.loop is not None:
            self.loop.close()
        if self.anvil is not None:
            self.anvil.stop()
        d = self.opts.directory
        for name in (STATEFILE, PIDFILE):
            (d / name).unlink(missing_ok=True)
        self.manifest_path.unlink(missing_ok=True)


async def _serve_dashboard(apis: list[tuple[str, str]], port: int) -> web.AppRunner:
    from oracle.devnet.dashboard import make_dashboard_app

    runner = web.AppRunner(make_dashboard_app(apis), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def clean_previous(directory: Path) -> None:
    """Remove what an earlier devnet left in ``directory``: its node directories (keys, key
    shares and databases of another chain), specs and manifest. Every ``up`` starts fresh."""
    for entry in directory.iterdir():
        if entry.is_dir() and (entry.name == "feeds" or re.fullmatch(r"node\d+", entry.name)):
            shutil.rmtree(entry)
        elif entry.name == "manifest.json":
            entry.unlink()


def down(directory: Path, timeout: float = 60.0) -> dict[str, Any]:
    """Stop the devnet of ``directory`` from another process; what was stopped, with the
    ``message`` to print.

    The launcher gets SIGTERM and stops its children itself; whatever it recorded and is
    still running afterwards, or what a launcher that is already gone left behind, is
    stopped here (SIGTERM, then SIGKILL), by pid and start time."""
    launcher = running_launcher(directory)
    if launcher is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(launcher.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while launcher.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if launcher.alive():
            raise DevnetError(
                f"the devnet (pid {launcher.pid}) did not stop within {timeout:.0f} s"
            )
    leftovers = stop_leftovers(directory)
    for name in (STATEFILE, PIDFILE):
        (directory / name).unlink(missing_ok=True)
    if launcher is not None:
        message = f"stopped the devnet in {directory} (pid {launcher.pid}); no process left behind"
    elif leftovers:
        message = (
            f"the devnet in {directory} had lost its launcher; stopped what it left: "
            f"{', '.join(map(str, leftovers))}; no process left behind"
        )
    else:
        message = f"no devnet is running in {directory}"
    return {
        "dir": str(directory),
        "launcher_pid": launcher.pid if launcher is not None else None,
        "leftovers": [str(p) for p in leftovers],
        "message": message,
    }


def _register_small(sender: Sender, manifest: Manifest, feeds: list[tuple[str, bytes]]) -> None:
    """Register the RL loop's feeds, (id, bytes32) each, with a small history: an agent or
    a market reads every one of them each step (rl.HISTORY_DEPTH)."""
    oracle = at(sender.w3, "MiraOracle", manifest.oracle)
    for fid, fid32 in feeds:
        register_feed(
            sender, oracle, FeedRegistration(fid, fid32, 8, fid, rl.HISTORY_DEPTH), manifest
        )
