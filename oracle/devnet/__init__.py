"""``mira devnet``: anvil, the contracts, a committee of node processes and the demo feeds'
price sources on one machine.

The launcher writes each member's keys and proposes the committee on-chain; the node
processes run the DKG among themselves over p2p and propose the group key; the launcher,
as the oracle's owner, activates it (``oracle.chain.rotation``). No key share is ever
made or seen outside its node.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import random
import re
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from eth_account import Account
from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.anvil import Anvil, AnvilConfig
from oracle.chain.deploy import at
from oracle.chain.rotation import KeyProposals, activate_when_proposed, propose_committee
from oracle.chain.system import Manifest, Sender, deploy_system, feed_registrations
from oracle.chain.toolchain import tool
from oracle.config import load_feed_specs
from oracle.config.feeds import FeedSpec
from oracle.errors import MiraError
from oracle.node.localnet import (
    NodeProc,
    _Loop,
    node_config_toml,
    provision_committee,
    spawn_node,
    stop_node,
)
from oracle.storage import make_engine, upgrade

HEARTBEAT_S = 10  # every demo feed's heartbeat on the devnet, so rounds land visibly
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


@dataclass
class DevnetOptions:
    directory: Path
    nodes: int = 4
    anvil_port: int = 8545
    base_port: int = 7700  # node i: API base_port + 2i, p2p base_port + 2i + 1
    price_port: int = 9101  # the median feed's sources: price_port, +1, +2
    feeds_dir: Path = Path("feeds")
    round_period_s: float = 1.0

    def node_ports(self) -> list[tuple[int, int]]:
        return [(self.base_port + 2 * i, self.base_port + 2 * i + 1) for i in range(self.nodes)]

    def price_ports(self) -> list[int]:
        return [self.price_port + i for i in range(len(PRICE_SOURCES))]


# -- preflight ------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def running_pid(directory: Path) -> int | None:
    """The pid of a live ``mira devnet up`` in ``directory``, if any."""
    try:
        pid = int((directory / PIDFILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        # as the servers themselves bind: a port in TIME_WAIT is free to them
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def preflight(opts: DevnetOptions) -> None:
    """Raise DevnetError with one line saying what to do if the devnet cannot start."""
    d = opts.directory
    pid = running_pid(d)
    if pid is not None:
        raise DevnetError(
            f"a devnet is already running in {d} (pid {pid}); run `mira devnet down --dir {d}`"
        )
    if not 1 <= opts.nodes <= 20:
        raise DevnetError(f"--nodes {opts.nodes}: expected 1 to 20 nodes")
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
    for what, port, option in ports:
        if not 0 < port < 65536:
            raise DevnetError(f"{what} port {port} is out of range; pick another with {option}")
        if not port_free(port):
            raise DevnetError(
                f"port {port} ({what}) is already in use; stop whatever listens there "
                f"or pick another with {option}"
            )


# -- the median feed's price sources ---------------------------------------------------------


class PriceSources:
    """Three HTTP JSON endpoints serving one ETH/USD random walk, each with a little noise
    of its own, on ``ports``."""

    def __init__(self, loop: _Loop, ports: list[int], start: float = 2000.0) -> None:
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
    loop: _Loop | None = None
    prices: PriceSources | None = None
    nodes: list[NodeProc] = field(default_factory=list)
    manifest: Manifest | None = None
    specs: list[FeedSpec] = field(default_factory=list)

    @property
    def manifest_path(self) -> Path:
        return self.opts.directory / "manifest.json"

    def start(self, say: Any = print) -> None:
        opts, d = self.opts, self.opts.directory
        (d / PIDFILE).write_text(f"{os.getpid()}\n")
        # the demo specs as the devnet runs them
        spec_dir = d / "feeds"
        spec_dir.mkdir(exist_ok=True)
        sources = sorted(opts.feeds_dir.glob("*.toml"))
        if not sources:
            raise DevnetError(f"no feed specs in {opts.feeds_dir}; run from the repository root")
        for old in spec_dir.glob("*.toml"):
            old.unlink()
        start_ms = int(time.time() * 1000)
        for path in sources:
            (spec_dir / path.name).write_text(
                devnet_spec_text(path.read_text(), opts.price_ports(), start_ms)
            )
        self.specs = load_feed_specs(sorted(spec_dir.glob("*.toml")))

        self.anvil = Anvil(
            AnvilConfig(port=opts.anvil_port, block_time=1.0, accounts=opts.nodes + 1)
        ).start()
        self._save_state()
        rpc = self.anvil.url
        w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
        deployer = Account.from_key(self.anvil.private_keys[0])
        feeds = feed_registrations(self.specs)
        manifest = deploy_system(w3, deployer, rpc, feeds)
        say(f"anvil        {rpc} (chain id {manifest.chain_id}, 1 s blocks)")
        say(f"MiraOracle   {manifest.oracle}")

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

        self.loop = _Loop()
        self.prices = PriceSources(self.loop, opts.price_ports())
        self.prices.start()
        say("prices       " + ", ".join(f"http://127.0.0.1:{p}" for p in opts.price_ports()))

        for node in committee.nodes:
            self._write_node(node, rpc, manifest.oracle, spec_dir)
            spawn_node(node)
            self.nodes.append(node)
        self._save_state()
        say(f"DKG          {opts.nodes} node processes, over p2p; waiting for their group key")
        seen: dict[str, KeyProposals] = {}

        def remember(state: KeyProposals) -> None:
            seen["last"] = state

        activate_when_proposed(oracle, owner.send, timeout=120.0, progress=remember)
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
        manifest.write(self.manifest_path)
        self.manifest = manifest
        for n in self.nodes:
            say(f"node-{n.index}       {n.api}  (log {n.dir / 'node.log'})")
        for feed_id, entry in manifest.feeds.items():
            say(f"feed         {feed_id:<24} proxy {entry['proxy']}")
        say(f"manifest     {self.manifest_path}")

    def _write_node(self, node: NodeProc, rpc: str, oracle: str, spec_dir: Path) -> None:
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
                oracle=oracle,
                round_period=self.opts.round_period_s,
                observe_timeout=0.5,
                transmit_timeout=5.0,
                rpc_timeout=3.0,
            )
        )

    def _save_state(self) -> None:
        pids = [n.proc.pid for n in self.nodes if n.proc is not None]
        if self.anvil is not None and self.anvil.pid is not None:
            pids.append(self.anvil.pid)
        (self.opts.directory / STATEFILE).write_text(
            json.dumps({"pid": os.getpid(), "children": pids}) + "\n"
        )

    def stop(self, node_timeout: float = 10.0) -> None:
        """Nodes (SIGTERM, then SIGKILL after ``node_timeout``), price sources, anvil."""
        for node in self.nodes:  # all at once, then wait for each
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGTERM)
        for node in self.nodes:
            with contextlib.suppress(Exception):
                stop_node(node, node_timeout)
        if self.prices is not None:
            self.prices.stop()
        if self.loop is not None:
            self.loop.close()
        if self.anvil is not None:
            self.anvil.stop()
        d = self.opts.directory
        for name in (STATEFILE, PIDFILE):
            (d / name).unlink(missing_ok=True)
        self.manifest_path.unlink(missing_ok=True)


def down(directory: Path, timeout: float = 60.0) -> str:
    """Stop the devnet running in ``directory`` from another process; the message to print."""
    pid = running_pid(directory)
    if pid is None:
        (directory / PIDFILE).unlink(missing_ok=True)
        return f"no devnet is running in {directory}"
    children: list[int] = []
    with contextlib.suppress(OSError, ValueError, KeyError):
        children = list(json.loads((directory / STATEFILE).read_text())["children"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        raise DevnetError(f"the devnet (pid {pid}) did not stop within {timeout:.0f} s")
    left = [c for c in children if pid_alive(c)]
    for c in left:  # the launcher died without cleaning up: finish its job
        with contextlib.suppress(ProcessLookupError):
            os.killpg(c, signal.SIGKILL)
    time.sleep(0.2)
    left = [c for c in left if pid_alive(c)]
    if left:
        raise DevnetError(f"processes {left} of the devnet are still running")
    return f"stopped the devnet in {directory} (pid {pid}); no process left behind"
