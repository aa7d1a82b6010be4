"""A committee of node processes on a given anvil, with one feed whose value the caller
sets: what ``mira bench e2e`` measures, and what the multi-process tests build on
(``tests/harness``).

:meth:`LocalNet.setup` deploys MiraOracle, writes each member's keys, registers one feed
and proposes the committee on-chain (every member's operator, identity key and p2p URL);
:meth:`LocalNet.start` launches ``mira node run`` per member; the nodes run the DKG among
themselves over p2p and propose the group key, and :meth:`LocalNet.wait_ready`, as owner,
activates it. Feed values come from a small HTTP server the caller controls.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from web3 import Web3
from web3.contract import Contract

from oracle.chain.deploy import at, deploy
from oracle.chain.oracle_calls import MemberInfo
from oracle.chain.rotation import activate_when_proposed, propose_committee
from oracle.config.feeds import feed_id_bytes32
from oracle.devnet.processes import (
    BackgroundLoop,
    Committee,
    NodeProc,
    free_port,
    node_config_toml,
    provision_committee,
    spawn_node,
)
from oracle.errors import ChainError
from oracle.storage import make_engine, upgrade

FEED = "ETH/USD"
DECIMALS = 8


class FeedServer:
    """GET /price/{name} → {"price": value}; GET /prices → {name: value, …} (many feeds
    reading one answer, each its own key, as an exchange's ticker list); values set by the
    launcher."""

    def __init__(self, loop: BackgroundLoop) -> None:
        self.loop = loop
        self.values: dict[str, float] = {}
        self.port = free_port()
        self.changed_at: dict[str, float] = {}
        self._many = b"{}"

    async def _prices(self, request: web.Request) -> web.Response:
        return web.Response(body=self._many, content_type="application/json")

    def set_many(self, values: dict[str, float]) -> None:
        """What GET /prices answers from now on (serialized once here, not per request)."""
        self._many = json.dumps(values, separators=(",", ":")).encode()

    def many_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/prices"

    async def _price(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.values:
            return web.json_response({"error": "no such price"}, status=404)
        return web.json_response({"price": self.values[name]})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/price/{name}", self._price)
        app.router.add_get("/prices", self._prices)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        self.loop.run(self._start())

    def set(self, name: str, value: float) -> None:
        self.values[name] = value
        self.changed_at[name] = time.time()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/price/{name}"


FEED_SPEC = """id = "{feed}"
version = 1
description = "{feed}, from the launcher's HTTP source"
decimals = {decimals}
poll_interval_s = {poll}

[[sources]]
name = "launcher"
kind = "http"
url = "{url}"
path = "price"
timeout_s = 1.0
retries = 0

[aggregate]
method = "median"
min_sources = 1

[features]
target = "value"

[output]
kind = "value"

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = {deviation_bps}
heartbeat_s = 3600
tolerance_bps = {tolerance_bps}
"""


class LocalNet:
    """A committee of ``n`` node processes under ``root`` (node0, node1, …); member i's
    operator is ``anvil_keys[i + 1]``, the oracle's owner is anvil's first account.
    Subclasses change how a member is registered, configured or started through
    :meth:`registered_members`, :meth:`write_config` and :meth:`spawn`."""

    def __init__(
        self,
        root: Path,
        anvil_url: str,
        anvil_keys: list[str],
        n: int,
        *,
        poll_s: float = 0.2,
        round_period_s: float = 0.25,
        observe_timeout_s: float = 0.2,
        transmit_timeout_s: float = 3.0,
        deviation_bps: int = 10,
        tolerance_bps: int = 100,
        dkg_phase_timeout_s: float = 30.0,
        retain_s: float | None = None,
        pull: bool = False,
    ) -> None:
        self.root, self.n = root, n
        # pull: a MiraPullVerifier on the oracle (made at set-up), every member signing a
        # root for it each round
        self.pull = pull
        self.pull_verifier: Contract | None = None
        self.retain_s = retain_s  # the nodes' [database] retain_s (None: keep every row)
        self.dkg_phase_timeout_s = dkg_phase_timeout_s
        self.anvil_url = anvil_url
        self.rpc_url = anvil_url  # what the nodes' node.toml points at
        self.anvil_keys = anvil_keys
        self.round_period_s = round_period_s
        self.observe_timeout_s, self.transmit_timeout_s = observe_timeout_s, transmit_timeout_s
        self.params = {
            "poll": poll_s,
            "round_period": round_period_s,
            "observe_timeout": observe_timeout_s,
            "transmit_timeout": transmit_timeout_s,
            "deviation_bps": deviation_bps,
            "tolerance_bps": tolerance_bps,
        }
        self.loop = BackgroundLoop()
        self.feeds = FeedServer(self.loop)
        self.w3 = Web3(Web3.HTTPProvider(anvil_url, request_kwargs={"timeout": 30}))
        self.w3.eth.default_account = self.w3.eth.accounts[0]
        self.nodes: list[NodeProc] = []
        self.oracle: Contract | None = None
        self.feed_id = feed_id_bytes32(FEED)

    # -- set-up ---------------------------------------------------------------------------

    def setup(self) -> None:
        owner = self.w3.eth.accounts[0]
        oracle = deploy(self.w3, "MiraOracle", owner, 3600, 86400, 3600, 300)
        self.oracle = oracle
        self._wait(oracle.functions.registerFeed(self.feed_id, DECIMALS, FEED).transact())
        if self.pull:
            self.pull_verifier = deploy(self.w3, "MiraPullVerifier", oracle.address, 300)
        self.setup_committee()

    def setup_committee(self) -> None:
        """Once the oracle is deployed: the feed server, every member's keys and config,
        and the committee proposed on-chain."""
        assert self.oracle is not None
        self.feeds.start()
        self.set_price(2000.0)
        operators = [self.anvil_keys[i + 1] for i in range(self.n)]
        committee = provision_committee(
            [self.root / f"node{i}" for i in range(self.n)],
            operators,
            [(free_port(), free_port()) for _ in range(self.n)],
        )
        self.nodes.extend(committee.nodes)
        self.committee = committee
        members = self.registered_members(committee)
        for node in self.nodes:
            self.write_config(node)
        propose_committee(self.oracle, self._send, committee.threshold, members)

    def registered_members(self, committee: Committee) -> list[MemberInfo]:
        """The members as proposed on-chain (operator, identity key, p2p URL)."""
        return committee.members

    def _send(self, call: Any, what: str) -> Any:
        self._wait(call.transact())

    def _wait(self, tx: Any) -> None:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=60)
        if receipt["status"] != 1:
            raise RuntimeError("localnet transaction reverted")

    def set_price(self, value: float) -> None:
        """The value every node's source serves (the feed server's value "honest")."""
        self.feeds.set("honest", value)

    def write_config(
        self,
        node: NodeProc,
        *,
        source: str = "honest",
        database: str = "node.sqlite",
        peer_urls: dict[str, str] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        """(Re)write a node's feed spec (reading the feed server's value ``source``;
        ``spec`` overrides its publish parameters) and node.toml (on ``database`` in its
        directory, migrated here)."""
        upgrade(make_engine(f"sqlite:///{node.dir / database}"))
        (node.dir / "feeds").mkdir(parents=True, exist_ok=True)
        (node.dir / "feeds" / "eth_usd.toml").write_text(
            FEED_SPEC.format(
                feed=FEED,
                decimals=DECIMALS,
                url=self.feeds.url(source),
                **{**self.params, **(spec or {})},
            )
        )
        assert self.oracle is not None
        (node.dir / "node.toml").write_text(
            node_config_toml(
                node,
                database=database,
                rpc_url=self.rpc_url,
                oracle=self.oracle.address,
                round_period=self.round_period_s,
                observe_timeout=self.observe_timeout_s,
                transmit_timeout=self.transmit_timeout_s,
                rpc_timeout=2.0,
                flush_every_s=0.2,
                checkpoint_every_s=5,
                peer_urls=peer_urls,
                dkg_phase_timeout=self.dkg_phase_timeout_s,
                retain_s=self.retain_s,
                pull_verifier=None if self.pull_verifier is None else self.pull_verifier.address,
            )
        )

    # -- processes ------------------------------------------------------------------------

    def start(self, index: int | None = None) -> None:
        for node in self.nodes if index is None else [self.nodes[index]]:
            self.spawn(node)

    def spawn(self, node: NodeProc) -> None:
        spawn_node(node)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        node = self.nodes[index]
        if node.proc is not None and node.proc.poll() is None:
            os.killpg(node.proc.pid, sig)
            node.proc.wait(15)
        node.proc = None

    def restart(self, index: int, **config: Any) -> None:
        self.kill(index, signal.SIGTERM)
        self.write_config(self.nodes[index], **config)
        self.start(index)

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                self.kill(node.index, signal.SIGTERM)
            if node.log_file is not None:
                node.log_file.close()
        self.loop.close()

    def wait_ready(self, timeout: float = 60.0, indices: list[int] | None = None) -> None:
        """Wait until the nodes serve an epoch; the first time, that is after their DKG:
        the harness, as owner, activates the key they all proposed."""
        deadline = time.monotonic() + timeout
        assert self.oracle is not None
        if int(self.oracle.functions.currentEpoch().call()) == 0:
            # a node that exits during the DKG ends the wait at once, saying why (else the
            # wait for its proposal runs to the timeout: minutes at 10,000 feeds)
            try:
                activate_when_proposed(
                    self.oracle, self._send, timeout=timeout, progress=lambda _: self._all_alive()
                )
            except ChainError as exc:  # what each member says it waits for
                raise ChainError(f"{exc}\n{self._keygen_states()}") from exc
        for node in [self.nodes[i] for i in (indices or range(self.n))]:
            while True:
                status = self.status(node.index)
                if status is not None and status.get("state") == "active":
                    break
                self._all_alive([node.index])
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"node {node.index} not active: {status}\n{self.log_tail(node.index)}"
                    )
                time.sleep(0.1)

    def _keygen_states(self) -> str:
        lines = []
        for node in self.nodes:
            try:
                status = self.status(node.index)
                said = (
                    "its API does not answer"
                    if status is None
                    else f"{status.get('state')}; keygen: {status.get('keygen')}"
                )
            except Exception as exc:  # its API is down too: that says something as well
                said = f"API unreachable ({type(exc).__name__})"
            lines.append(f"node {node.index}: {said}")
        return "\n".join(lines)

    def _all_alive(self, indices: list[int] | None = None) -> None:
        """Raise, with its log's tail, if a started node process has exited."""
        for node in [self.nodes[i] for i in (indices or range(self.n))]:
            if node.proc is not None and node.proc.poll() is not None:
                raise RuntimeError(f"node {node.index} exited:\n{self.log_tail(node.index)}")

    def status(self, index: int) -> dict[str, Any] | None:
        return self.loop.run(self._get(self.nodes[index].api + "/v1/network"), timeout=10)

    def metrics(self, index: int, names: tuple[str, ...] = ()) -> str:
        """A node's /metrics (only the series ``names``, if given)."""

        async def get() -> str:
            params = [("name[]", n) for n in names]
            async with (
                aiohttp.ClientSession() as s,
                s.get(self.nodes[index].api + "/metrics", params=params) as r,
            ):
                return await r.text()

        return self.loop.run(get(), timeout=10)

    async def _get(self, url: str) -> dict[str, Any] | None:
        try:
            async with (
                aiohttp.ClientSession() as s,
                s.get(url, timeout=aiohttp.ClientTimeout(total=3)) as r,
            ):
                if r.status != 200:
                    return None
                data: dict[str, Any] = await r.json()
                return data
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
            return None

    def log_tail(self, index: int, lines: int = 30) -> str:
        path = self.nodes[index].dir / "node.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    # -- chain ----------------------------------------------------------------------------

    def latest(self) -> tuple[int, int, int]:
        assert self.oracle is not None
        r, v, t = self.oracle.functions.latestRound(self.feed_id).call()
        return int(r), int(v), int(t)

    def proxy_answer(self) -> tuple[int, int]:
        """(roundId, answer) through the feed's AggregatorV3Interface proxy."""
        assert self.oracle is not None
        address = self.oracle.functions.proxyOf(self.feed_id).call()
        proxy = at(self.w3, "MiraFeedProxy", address)
        data = proxy.functions.latestRoundData().call()
        return int(data[0]), int(data[1])

    def transmissions(self, from_block: int = 0) -> list[dict[str, Any]]:
        """Every ReportTransmitted event: epoch, round, block, sender, gas used, tx hash."""
        assert self.oracle is not None
        out = []
        for ev in self.oracle.events.ReportTransmitted().get_logs(from_block=from_block):
            tx = self.w3.eth.get_transaction(ev["transactionHash"])
            receipt = self.w3.eth.get_transaction_receipt(ev["transactionHash"])
            out.append(
                {
                    "epoch": int(ev["args"]["epoch"]),
                    "round": int(ev["args"]["round"]),
                    "block": int(ev["blockNumber"]),
                    "sender": str(tx["from"]),
                    "gas": int(receipt["gasUsed"]),
                    "tx_hash": bytes(ev["transactionHash"]),
                }
            )
        return out

    def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if predicate():
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
