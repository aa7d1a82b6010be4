"""The network tests' committee: :class:`oracle.devnet.localnet.LocalNet` with the faults
the scenarios need and production code never carries: a member that reads a lying price
source, a member started with a fault (:mod:`tests.harness.faulty_node`: a signer
sending invalid shares, a leader proposing its own value), a member registered at an
unreachable p2p URL, and an RPC proxy that can stop answering."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from oracle.chain.deploy import at
from oracle.chain.oracle_calls import MemberInfo
from oracle.devnet.localnet import LocalNet
from oracle.devnet.processes import BackgroundLoop, Committee, NodeProc, free_port, spawn_node

UNREACHABLE_P2P_URL = "http://127.0.0.1:9"  # the discard port: connections are refused
LIE = 2600.0  # what the lying source serves: +30 % of the tests' starting 2000
# the faulty node's entry point, run from the checkout's root (where ``tests`` is a package)
FAULTY_MAIN = (sys.executable, "-m", "tests.harness.faulty_node")
ROOT = Path(__file__).resolve().parents[2]


class RpcProxy:
    """A TCP proxy to the RPC. While paused it accepts connections and holds every byte:
    to the nodes the RPC simply stops answering."""

    def __init__(self, loop: BackgroundLoop, target_port: int) -> None:
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


class HarnessNet(LocalNet):
    """``hidden``: that member registers an unreachable p2p URL on-chain; the others reach
    it through ``[network.peer_urls]`` in their node.toml. Every node's RPC goes through
    :attr:`rpc`, which a test can pause."""

    def __init__(self, *args: Any, hidden: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden = hidden
        self.peer_urls: dict[str, str] = {}
        self.faults: dict[int, str] = {}  # member → the fault its process runs with
        self.rpc = RpcProxy(self.loop, int(self.anvil_url.rsplit(":", 1)[1]))

    def setup(self) -> None:
        self.rpc.start()
        self.rpc_url = self.rpc.url
        super().setup()
        self.feeds.set("liar", LIE)

    def registered_members(self, committee: Committee) -> list[MemberInfo]:
        if self.hidden is None:
            return committee.members
        real = committee.members[self.hidden]
        self.peer_urls = {real.operator: real.p2p_url}
        members = list(committee.members)
        members[self.hidden] = MemberInfo(real.operator, real.identity_key, UNREACHABLE_P2P_URL)
        committee.members[:] = members
        return members

    def write_config(
        self,
        node: NodeProc,
        *,
        source: str = "honest",
        database: str | None = None,
        peer_urls: dict[str, str] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        """A lying node reads another source; its feed spec then differs from the
        committee's, so it runs on a database of its own (a node's stored outputs are
        bound to the spec they were computed under)."""
        super().write_config(
            node,
            source=source,
            database=database or ("node.sqlite" if source == "honest" else f"node-{source}.sqlite"),
            peer_urls=peer_urls or (None if node.index == self.hidden else self.peer_urls),
            spec=spec,
        )

    def proxy_answers_after(self, round_id: int) -> list[int]:
        """The answers of every round after ``round_id`` (a proxy round id, as
        ``proxy_answer`` returns it) up to the latest, read through the feed's proxy with
        ``getRoundData`` as a Chainlink consumer would: ids are consecutive within a phase."""
        assert self.oracle is not None
        proxy = at(self.w3, "MiraFeedProxy", self.oracle.functions.proxyOf(self.feed_id).call())
        latest = int(proxy.functions.latestRoundData().call()[0])
        answers = []
        for rid in range(round_id + 1, latest + 1):
            data = proxy.functions.getRoundData(rid).call()
            assert int(data[0]) == rid and int(data[3]) != 0, (rid, data)  # still kept
            answers.append(int(data[1]))
        return answers

    def spawn(self, node: NodeProc) -> None:
        fault = self.faults.get(node.index)
        if fault is None:
            spawn_node(node)
        else:
            spawn_node(node, (*FAULTY_MAIN, fault), {"PYTHONPATH": str(ROOT)})

    def restart(  # type: ignore[override]
        self,
        index: int,
        *,
        source: str = "honest",
        fault: str | None = None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        """Restart member ``index`` reading ``source``, with a fault of
        :data:`tests.harness.faults.FAULTS` or none, its feed spec's publish parameters
        overridden by ``spec``."""
        if fault is None:
            self.faults.pop(index, None)
        else:
            self.faults[index] = fault
        self.kill(index, signal.SIGTERM)
        self.write_config(self.nodes[index], source=source, spec=spec)
        self.start(index)
