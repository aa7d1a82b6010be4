"""Shared pieces of the transaction-manager tests: a chain under the test's control, a
manager factory, a loop that ticks the manager and mines until a condition holds, and a
JSON-RPC proxy that corrupts chosen answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web
from eth_account import Account
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from web3 import Web3
from web3.contract import Contract

from oracle import artifacts
from oracle.chain.anvil import Anvil
from oracle.chain.deploy import deploy
from oracle.devnet.processes import free_port
from oracle.transmission import State, TransmissionManager, TxManagerConfig


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    answer = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    assert "error" not in answer, answer
    return answer["result"]


def mine(w3: Web3, blocks: int = 1) -> None:
    for _ in range(blocks):
        rpc(w3, "evm_mine", [])


@dataclass
class Chain:
    anvil: Anvil
    w3: Web3
    probe: Contract
    key: str  # the manager's sender key (anvil account 1; the probe is deployed by 0)

    @property
    def sender(self) -> str:
        return str(Account.from_key(self.key).address)

    def record_call(self, key: bytes) -> bytes:
        return bytes.fromhex(self.probe.encode_abi("record", args=[key])[2:])

    def chain_nonce(self, tag: str = "latest") -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(self.sender), tag))


def start_chain(anvil: Anvil) -> Chain:
    w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 10}))
    w3.eth.default_account = w3.eth.accounts[0]
    automine = rpc(w3, "anvil_getAutomine", [])
    if not automine:
        rpc(w3, "evm_setAutomine", [True])
    probe = deploy(w3, "TransmissionProbe")
    if not automine:
        rpc(w3, "evm_setAutomine", [False])
    return Chain(anvil, w3, probe, anvil.private_keys[1])


def make_manager(
    engine: Engine,
    chain: Chain,
    urls: Iterable[str] | None = None,
    *,
    key: str | None = None,
    registry: CollectorRegistry | None = None,
    **knobs: Any,
) -> TransmissionManager:
    settings: dict[str, Any] = {"confirmation_depth": 2, "health_interval": 3600.0}
    settings.update(knobs)
    config = TxManagerConfig(
        chain_id=31337,
        rpc_urls=tuple(urls if urls is not None else [chain.anvil.url]),
        **settings,
    )
    return TransmissionManager(
        engine,
        Account.from_key(key or chain.key),
        config,
        registry=registry if registry is not None else CollectorRegistry(),
        error_abis=[artifacts.load("TransmissionProbe").abi, artifacts.load("MiraOracle").abi],
    )


async def drive(
    manager: TransmissionManager,
    chain: Chain,
    ids: Iterable[int],
    until: Callable[[list[State]], bool] = lambda states: all(s is State.CONFIRMED for s in states),
    *,
    mine_blocks: bool = True,
    max_ticks: int = 40,
) -> list[State]:
    """Tick (and mine a block after each tick) until ``until`` holds; bounded."""
    ids = list(ids)
    states: list[State] = []
    for _ in range(max_ticks):
        await manager.tick()
        states = [manager.fate(i).state for i in ids]
        if until(states):
            return states
        if mine_blocks:
            mine(chain.w3)
    fates = [manager.fate(i) for i in ids]
    raise AssertionError(f"condition not reached after {max_ticks} ticks: {fates}")


def dead_url() -> str:
    """A 127.0.0.1 URL on which nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


Corruption = Callable[[dict[str, Any], dict[str, Any]], bytes | dict[str, Any] | None]


@dataclass
class FakeRpc:
    """An aiohttp JSON-RPC server on 127.0.0.1 that proxies to ``upstream`` and lets a
    test replace the answers to chosen methods (``corrupt[method](request, answer)``
    returns raw bytes, a replacement answer object, or None to pass the answer on)."""

    upstream: str
    corrupt: dict[str, Corruption] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _session: ClientSession | None = None

    async def start(self) -> FakeRpc:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._session = ClientSession()
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        call = json.loads(body)
        self.calls.append(call["method"])
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            answer = await resp.json()
        hook = self.corrupt.get(call["method"])
        if hook is not None:
            replaced = hook(call, answer)
            if isinstance(replaced, bytes):
                return web.Response(body=replaced, content_type="application/json")
            if replaced is not None:
                answer = replaced
        return web.json_response(answer)
