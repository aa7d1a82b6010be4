"""The transaction manager as a node service: reports go out through it.

It runs for the operator key of ``[network]`` on the chain its RPC URLs serve, over the
node's database (tables of migration 0002) and with its metrics on the node's registry.
Like the network service it never blocks the node's start on the chain: it learns the
chain id and starts the manager in the background, retrying until an endpoint answers;
until then :meth:`running` is None and a submitted report fails (the round protocol
retries it).
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import structlog
from eth_account import Account
from eth_account.signers.local import LocalAccount

from oracle import artifacts
from oracle.node.keys import NetworkSetup
from oracle.retry import Backoff, wait_after_failure
from oracle.service import Health
from oracle.transmission import HealthReport, TransmissionManager, TxManagerConfig

log = structlog.get_logger(__name__)

# How the node's chain-facing services (this one and oracle.node.network's supervisor)
# retry while their RPC does not answer: 0.2 s, growing to one try every 2 s.
STARTUP_BACKOFF = Backoff(0.2, 1.5, cap_s=2.0)


def node_health(report: HealthReport) -> Health:
    """The manager's health in the node's terms: ``failed`` is unhealthy; ``degraded``
    (a demoted endpoint, a low balance, a job in trouble) stays healthy but says why."""
    detail = "" if report.status == "ok" else f"{report.status}: {report.detail}"
    return Health(
        report.status != "failed",
        detail,
        {p.name: node_health(p) for p in report.parts},
    )


class TransmissionService:
    name = "transmission"

    def __init__(self, setup: NetworkSetup) -> None:
        self.config = setup.config
        self.keys = setup.keys
        self.engine = setup.engine
        self.registry = setup.registry
        self.manager: TransmissionManager | None = None
        self.account: LocalAccount | None = None
        self._task: asyncio.Task[None] | None = None
        self._state = "not started"

    @property
    def sender(self) -> str:
        assert self.account is not None, "the transmission service is not started"
        return str(self.account.address)

    def running(self) -> TransmissionManager | None:
        """The manager once it has started (synced its nonce), else None."""
        return self.manager if self._state == "active" else None

    async def start(self) -> None:
        self.account = Account.from_key(self.keys.operator().secret_bytes())
        self._state = "bootstrapping"
        self._task = asyncio.create_task(self._bootstrap(), name="transmission-bootstrap")

    async def _chain_id(self) -> int:
        """eth_chainId from the first endpoint that answers."""
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        timeout = aiohttp.ClientTimeout(total=self.config.rpc_timeout_s)
        errors = []
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for url in self.config.rpc_urls:
                try:
                    async with session.post(
                        url, data=payload, headers={"Content-Type": "application/json"}
                    ) as resp:
                        answer = await resp.json(content_type=None)
                    return int(answer["result"], 16)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:120])
        raise RuntimeError("eth_chainId: no endpoint answered: " + "; ".join(errors))

    async def _bootstrap(self) -> None:
        cfg = self.config
        attempt = 0
        while True:
            try:
                if self.manager is None:
                    assert self.account is not None
                    chain_id = await self._chain_id()
                    self.manager = TransmissionManager(
                        self.engine,
                        self.account,
                        TxManagerConfig(
                            chain_id=chain_id,
                            rpc_urls=cfg.rpc_urls,
                            confirmation_depth=cfg.tx_confirmation_depth,
                            poll_interval=cfg.tx_poll_interval_s,
                            rpc_timeout=cfg.rpc_timeout_s,
                            demote_seconds=cfg.tx_rpc_demote_s,
                            health_interval=cfg.tx_rpc_health_interval_s,
                        ),
                        registry=self.registry,
                        error_abis=[artifacts.load("MiraOracle").abi],
                    )
                await self.manager.start()
                self._state = "active"
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self._state = f"bootstrapping: {type(exc).__name__}: {exc}"[:300]
                await wait_after_failure(
                    attempt, STARTUP_BACKOFF, log, "transmission.bootstrap_retry", exc
                )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.manager is not None:
            await self.manager.stop()
        self._state = "stopped"

    def health(self) -> Health:
        if self.manager is None or self._state != "active":
            return Health(False, self._state)
        return node_health(self.manager.health())
