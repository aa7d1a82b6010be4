"""A whole oracle network on one machine, each node its own OS process: for the
multi-process tests and ``mira bench e2e``.

The harness deploys MiraOracle on a given anvil, writes each member's keys, registers one
feed, proposes the committee on-chain (every member's operator, identity key and p2p URL)
and launches ``mira node run`` per member; the nodes run the DKG among themselves over
p2p and propose the group key, and the harness, as owner, activates it. Feed values come
from a small HTTP server the harness controls; each node's RPC goes through a TCP proxy
that can be paused to simulate an unresponsive RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from eth_account import Account
from web3 import Web3
from web3.contract import Contract

from oracle.chain.deploy import at, deploy
from oracle.chain.oracle_calls import MemberInfo
from oracle.chain.rotation import activate_when_proposed, default_threshold, propose_committee
from oracle.children import die_with_parent
from oracle.config.feeds import feed_id_bytes32
from oracle.crypto.envelope import IdentityKey
from oracle.crypto.keystore import KeyStore, OperatorKey, encrypt_key
from oracle.storage import make_engine, upgrade

T = TypeVar("T")
PASSPHRASE = b"localnet-passphrase"
FEED = "ETH/USD"
DECIMALS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Loop:
    """An asyncio loop in a daemon thread, for the harness's servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class FeedServer:
    """GET /price/{name} → {"price": value}; values set by the harness."""

    def __init__(self, loop: _Loop) -> None:
        self.loop = loop
        self.values: dict[str, float] = {}
        self.port = free_port()
        self.changed_at: dict[str, float] = {}

    async def _price(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.values:
            return web.json_response({"error": "no such price"}, status=404)
        return web.json_response({"price": self.values[name]})

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/price/{name}", self._price)
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


class RpcProxy:
    """A TCP proxy to the RPC. While paused it accepts connections and holds every byte:
    to the nodes the RPC simply stops answering."""

    def __init__(self, loop: _Loop, target_port: int) -> None:
        self.loop = loop
        self.target_port = target_port
        self.port = free_port()
        self.paused = False

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                while self.paused:
                    await asyncio.sleep(0.05)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while self.paused:
            await asyncio.sleep(0.05)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    def start(self) -> None:
        self.loop.run(self._start())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


UNREACHABLE_P2P_URL = "http://127.0.0.1:9"  # the discard port: connections are refused


@dataclass
class NodeProc:
    index: int
    dir: Path
    api_port: int
    p2p_port: int
    operator: str
    proc: subprocess.Popen[bytes] | None = None
    log_file: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@dataclass
class Committee:
    """A committee provisioned by the harness: per-member key files, no key shares (the
    members derive those themselves, in the DKG their nodes run over p2p)."""

    threshold: int
    members: list[MemberInfo]
    nodes: list[NodeProc]


def provision_committee(
    dirs: list[Path],
    operator_keys: list[str],
    ports: list[tuple[int, int]],
    *,
    host: str = "127.0.0.1",
) -> Committee:
    """Write each member's encrypted operator key and a fresh identity key into
    ``dirs[i]/keys``. ``ports[i]`` is member i's (API, p2p) port pair."""
    n = len(dirs)
    members, nodes = [], []
    for i in range(n):
        operator = Account.from_key(operator_keys[i])
        node = NodeProc(i, dirs[i], ports[i][0], ports[i][1], operator.address)
        nodes.append(node)
        keys = KeyStore(node.dir / "keys", scrypt_n=2**10)
        keys.directory.mkdir(parents=True, exist_ok=True)
        (keys.directory / "passphrase").write_bytes(PASSPHRASE)
        identity = IdentityKey()
        op_key = OperatorKey(bytes.fromhex(operator_keys[i].removeprefix("0x")))
        keys.write_document(
            "operator",
            encrypt_key("operator", op_key, PASSPHRASE, scrypt_n=2**10),
            overwrite=True,
        )
        keys.write_document(
            "identity",
            encrypt_key("identity", identity, PASSPHRASE, scrypt_n=2**10),
            overwrite=True,
        )
        members.append(
            MemberInfo(operator.address, identity.public_bytes, f"http://{host}:{node.p2p_port}")
        )
    return Committee(default_threshold(n), members, nodes)


def spawn_node(node: NodeProc) -> None:
    """Start ``mira node run --config DIR/node.toml`` in its own session, logging to
    DIR/node.log. The node gets SIGTERM (and drains, within its stop bound) when the process
    that started it ends, however that ends (:func:`oracle.children.die_with_parent`)."""
    node.log_file = open(node.dir / "node.log", "ab")  # noqa: SIM115 (lives with the process)
    node.proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from oracle.cli.main import main; main()",
            "node",
            "run",
            "--config",
            str(node.dir / "node.toml"),
        ],
        stdout=node.log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent(signal.SIGTERM),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stop_node(node: NodeProc, timeout: float = 10.0) -> None:
    """SIGTERM the node's process group; SIGKILL it if it has not exited after ``timeout``."""
    proc, node.proc = node.proc, None
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if node.log_file is not None:
        node.log_file.close()
        node.log_file = None


FEED_SPEC = """id = "{feed}"
version = 1
description = "{feed}, from the harness's HTTP source"
decimals = {decimals}
poll_interval_s = {poll}

[[sources]]
name = "harness"
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

_NODE_TOML = """[node]
name = "node-{index}"
feeds_dir = "feeds"

[database]
url = "sqlite:///{database}"

[api]
host = "127.0.0.1"
port = {api_port}
{scheduler}
[log]
level = "info"
format = "json"

[network]
listen_host = "127.0.0.1"
listen_port = {p2p_port}
rpc_url = "{rpc_url}"
oracle = "{oracle}"
keys_dir = "keys"
passphrase_file = "keys/passphrase"
round_period_s = {round_period}
observe_timeout_s = {observe_timeout}
transmit_timeout_s = {transmit_timeout}
rpc_timeout_s = {rpc_timeout}
dkg_phase_timeout_s = {dkg_phase_timeout}
corrupt_signature_shares = {corrupt}
"""


def node_config_toml(
    node: NodeProc,
    *,
    database: str,
    rpc_url: str,
    oracle: str,
    round_period: float,
    observe_timeout: float,
    transmit_timeout: float,
    rpc_timeout: float,
    corrupt_signature_shares: bool = False,
    flush_every_s: float | None = None,
    checkpoint_every_s: float | None = None,
    peer_urls: dict[str, str] | None = None,
    dkg_phase_timeout: float = 30.0,
) -> str:
    """The node.toml of one local member (the test harness and the devnet write the same
    file; only the timing knobs differ). Keys, passphrase and key shares live in ./keys.
    ``peer_urls``: operator address → p2p URL overriding the registered one."""
    scheduler = ""
    if flush_every_s is not None or checkpoint_every_s is not None:
        scheduler = "\n[scheduler]\n"
        if flush_every_s is not None:
            scheduler += f"flush_every_s = {flush_every_s}\n"
        if checkpoint_every_s is not None:
            scheduler += f"checkpoint_every_s = {checkpoint_every_s}\n"
    return _NODE_TOML.format(
        index=node.index,
        database=database,
        api_port=node.api_port,
        p2p_port=node.p2p_port,
        scheduler=scheduler,
        rpc_url=rpc_url,
        oracle=oracle,
        round_period=round_period,
        observe_timeout=observe_timeout,
        transmit_timeout=transmit_timeout,
        rpc_timeout=rpc_timeout,
        dkg_phase_timeout=dkg_phase_timeout,
        corrupt="true" if corrupt_signature_shares else "false",
    ) + "".join(
        ["\n[network.peer_urls]\n"]
        + [f'"{op}" = "{url}"\n' for op, url in sorted((peer_urls or {}).items())]
        if peer_urls
        else []
    )


class LocalNet:
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
        hidden: int | None = None,
        dkg_phase_timeout_s: float = 30.0,
    ) -> None:
        """``hidden``: that member registers an unreachable p2p URL on-chain; the others
        reach it through ``[network.peer_urls]`` in their node.toml."""
        self.root, self.n = root, n
        self.hidden = hidden
        self.dkg_phase_timeout_s = dkg_phase_timeout_s
        self.anvil_url = anvil_url
        self.anvil_port = int(anvil_url.rsplit(":", 1)[1])
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
        self.loop = _Loop()
        self.feeds = FeedServer(self.loop)
        self.rpc = RpcProxy(self.loop, self.anvil_port)
        self.w3 = Web3(Web3.HTTPProvider(anvil_url, request_kwargs={"timeout": 30}))
        self.w3.eth.default_account = self.w3.eth.accounts[0]
        self.nodes: list[NodeProc] = []
        self.peer_urls: dict[str, str] = {}
        self.oracle: Contract | None = None
        self.feed_id = feed_id_bytes32(FEED)

    # -- set-up ---------------------------------------------------------------------------

    def setup(self) -> None:
        self.feeds.start()
        self.rpc.start()
        self.set_price(2000.0)
        self.feeds.set("liar", 2600.0)
        owner = self.w3.eth.accounts[0]
        oracle = deploy(self.w3, "MiraOracle", owner, 3600, 86400, 3600, 300)
        self.oracle = oracle
        operators = [self.anvil_keys[i + 1] for i in range(self.n)]
        committee = provision_committee(
            [self.root / f"node{i}" for i in range(self.n)],
            operators,
            [(free_port(), free_port()) for _ in range(self.n)],
        )
        self.nodes.extend(committee.nodes)
        if self.hidden is not None:
            real = committee.members[self.hidden]
            committee.members[self.hidden] = MemberInfo(
                real.operator, real.identity_key, UNREACHABLE_P2P_URL
            )
            self.peer_urls = {real.operator: real.p2p_url}
        for node in self.nodes:
            self.write_config(node)
        self.committee = committee
        self._wait(oracle.functions.registerFeed(self.feed_id, DECIMALS, FEED).transact())
        propose_committee(oracle, self._send, committee.threshold, committee.members)

    def _send(self, call: Any, what: str) -> Any:
        self._wait(call.transact())

    def _wait(self, tx: Any) -> None:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=60)
        if receipt["status"] != 1:
            raise RuntimeError("harness transaction reverted")

    def set_price(self, value: float) -> None:
        """The value every honest node's source serves."""
        self.feeds.set("honest", value)

    def write_config(
        self, node: NodeProc, *, source: str = "honest", corrupt: bool = False
    ) -> None:
        """(Re)write a node's config. A lying node reads another source; its feed spec then
        differs from the committee's, so it runs on a database of its own (a node's stored
        outputs are bound to the spec they were computed under)."""
        database = "node.sqlite" if source == "honest" else f"node-{source}.sqlite"
        upgrade(make_engine(f"sqlite:///{node.dir / database}"))
        (node.dir / "feeds").mkdir(parents=True, exist_ok=True)
        (node.dir / "feeds" / "eth_usd.toml").write_text(
            FEED_SPEC.format(
                feed=FEED, decimals=DECIMALS, url=self.feeds.url(source), **self.params
            )
        )
        assert self.oracle is not None
        (node.dir / "node.toml").write_text(
            node_config_toml(
                node,
                database=database,
                rpc_url=self.rpc.url,
                oracle=self.oracle.address,
                round_period=self.round_period_s,
                observe_timeout=self.observe_timeout_s,
                transmit_timeout=self.transmit_timeout_s,
                rpc_timeout=2.0,
                corrupt_signature_shares=corrupt,
                flush_every_s=0.2,
                checkpoint_every_s=5,
                peer_urls=None if node.index == self.hidden else self.peer_urls,
                dkg_phase_timeout=self.dkg_phase_timeout_s,
            )
        )

    # -- processes ------------------------------------------------------------------------

    def start(self, index: int | None = None) -> None:
        for node in self.nodes if index is None else [self.nodes[index]]:
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
            activate_when_proposed(self.oracle, self._send, timeout=timeout)
        for node in [self.nodes[i] for i in (indices or range(self.n))]:
            while True:
                status = self.status(node.index)
                if status is not None and status.get("state") == "active":
                    break
                if node.proc is not None and node.proc.poll() is not None:
                    raise RuntimeError(f"node {node.index} exited:\n{self.log_tail(node.index)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"node {node.index} not active: {status}\n{self.log_tail(node.index)}"
                    )
                time.sleep(0.1)

    def status(self, index: int) -> dict[str, Any] | None:
        return self.loop.run(self._get(self.nodes[index].api + "/v1/network"), timeout=10)

    def metrics(self, index: int) -> str:
        async def get() -> str:
            async with aiohttp.ClientSession() as s, s.get(self.nodes[index].api + "/metrics") as r:
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
