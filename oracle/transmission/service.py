"""The transaction manager service: a narrow API (enqueue a call, learn its fate) over a
durable queue, driven by its jobs in a fixed order on every tick."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_checksum_address
from prometheus_client import REGISTRY, CollectorRegistry
from sqlalchemy import Engine

from oracle.transmission.balance import BalanceMonitor
from oracle.transmission.broadcaster import Broadcaster
from oracle.transmission.client import GAS_PRICE_ORACLE, ChainClient
from oracle.transmission.config import TxManagerConfig
from oracle.transmission.confirmer import Confirmer
from oracle.transmission.context import Checkpoint, Context, log
from oracle.transmission.errors import (
    InvalidTransmission,
    RpcError,
    TransmissionError,
    UnknownTransmission,
)
from oracle.transmission.fees import FeeEstimator
from oracle.transmission.metrics import TxMetrics
from oracle.transmission.nonces import NonceSyncer
from oracle.transmission.resender import Resender
from oracle.transmission.revert import RevertDecoder
from oracle.transmission.rpc import RpcPool
from oracle.transmission.states import TERMINAL, State, Transmission
from oracle.transmission.store import TransmissionStore

MAX_DATA_BYTES = 128 * 1024
_SEVERITY = {"ok": 0, "degraded": 1, "failed": 2}


@dataclass(frozen=True)
class HealthReport:
    """A service's health: its own status is the worst of its parts'."""

    name: str
    status: str  # ok | degraded | failed
    detail: str = ""
    parts: tuple[HealthReport, ...] = field(default_factory=tuple)

    @staticmethod
    def merge(name: str, parts: Iterable[HealthReport]) -> HealthReport:
        parts = tuple(parts)
        worst = max((p.status for p in parts), key=_SEVERITY.__getitem__, default="ok")
        bad = "; ".join(f"{p.name}: {p.detail}" for p in parts if p.status != "ok")
        return HealthReport(name, worst, bad, parts)


def _no_checkpoint(_point: str, _tid: int) -> None:
    return None


class TransmissionManager:
    """Delivers calls from one local key to one chain, exactly once each.

    ``enqueue`` stores a call (idempotent on its key) and returns its id; ``fate`` reads
    where it is. ``start`` syncs nonces and runs the jobs every ``poll_interval`` seconds;
    ``tick`` runs them once (tests drive it directly). One manager per key and chain.
    """

    name = "transmission"

    def __init__(
        self,
        engine: Engine,
        account: LocalAccount,
        config: TxManagerConfig,
        *,
        registry: CollectorRegistry | None = None,
        error_abis: Iterable[Sequence[Mapping[str, Any]]] = (),
        checkpoint: Checkpoint | None = None,
    ) -> None:
        sender = str(account.address)
        metrics = TxMetrics(registry if registry is not None else REGISTRY, config.chain_id, sender)
        pool = RpcPool(
            config.rpc_urls,
            config.chain_id,
            metrics,
            timeout=config.rpc_timeout,
            max_lag_blocks=config.max_lag_blocks,
            demote_seconds=config.demote_seconds,
        )
        client = ChainClient(pool, config, RevertDecoder(error_abis))
        self.config = config
        self.pool = pool
        self.ctx = Context(
            config=config,
            store=TransmissionStore(engine, config.chain_id, sender),
            client=client,
            fees=FeeEstimator(client, config),
            account=account,
            metrics=metrics,
            checkpoint=checkpoint or _no_checkpoint,
        )
        self.nonces = NonceSyncer(self.ctx)
        self.balance = BalanceMonitor(self.ctx)
        self.confirmer = Confirmer(self.ctx)
        self.resender = Resender(self.ctx)
        self.broadcaster = Broadcaster(self.ctx)
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._last_health_check = 0.0

    # -- API ------------------------------------------------------------------------------

    def enqueue(
        self,
        to: str,
        data: bytes,
        *,
        key: bytes,
        value: int = 0,
        gas_limit: int | None = None,
        max_fee_per_gas_cap: int | None = None,
    ) -> int:
        """Store a call to ``to``; return its id. ``key`` (e.g. the report hash) makes this
        idempotent: the same key and call return the same id, the same key with another
        call raises IdempotencyConflict. Raises QueueFull when too much is unfinished."""
        if not isinstance(to, str) or not is_hex_address(to):
            raise InvalidTransmission(f"target {to!r:.60} is not a 20-byte hex address")
        if not isinstance(data, bytes | bytearray):
            raise InvalidTransmission(f"data must be bytes, got {type(data).__name__}")
        if len(data) > MAX_DATA_BYTES:
            raise InvalidTransmission(f"data is {len(data)} bytes, above {MAX_DATA_BYTES}")
        if not isinstance(key, bytes | bytearray) or not 1 <= len(key) <= 32:
            raise InvalidTransmission("key must be 1 to 32 bytes (e.g. a report hash)")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**256:
            raise InvalidTransmission(f"value must be an integer in [0, 2**256), got {value!r:.40}")
        if gas_limit is not None and (
            isinstance(gas_limit, bool)
            or not isinstance(gas_limit, int)
            or not 21_000 <= gas_limit <= self.config.max_gas_limit
        ):
            raise InvalidTransmission(
                f"gas_limit must be in [21000, {self.config.max_gas_limit}], got {gas_limit!r:.40}"
            )
        if max_fee_per_gas_cap is not None and (
            isinstance(max_fee_per_gas_cap, bool)
            or not isinstance(max_fee_per_gas_cap, int)
            or not 0 < max_fee_per_gas_cap <= self.config.absurd_fee_wei
        ):
            raise InvalidTransmission(
                f"max_fee_per_gas_cap must be in (0, {self.config.absurd_fee_wei}] wei, "
                f"got {max_fee_per_gas_cap!r:.40}"
            )
        tid, created = self.ctx.store.enqueue(
            key=bytes(key),
            to=to_checksum_address(to),
            data=bytes(data),
            value=value,
            gas_limit=gas_limit,
            max_fee_cap=max_fee_per_gas_cap,
            max_unfinished=self.config.max_unfinished,
        )
        if created:
            log.info("transmission_enqueued", id=tid, to=to, key=bytes(key).hex())
        return tid

    def fate(self, tid: int) -> Transmission:
        """Where transmission ``tid`` is: state, nonce, hash, receipt data, cost, error."""
        t = self.ctx.store.get(tid)
        if t is None or t.sender != self.ctx.sender or t.chain_id != self.config.chain_id:
            raise UnknownTransmission(f"no transmission {tid} for {self.ctx.sender}")
        return t

    # -- service --------------------------------------------------------------------------

    async def start(self, *, run_loop: bool = True) -> None:
        """Check the endpoints, detect OP Stack, sync the nonce; then run the loop."""
        await self.pool.start()
        self._last_health_check = time.monotonic()
        if not self.pool.live:
            await self.pool.close()
            raise RpcError(
                f"no RPC endpoint for chain {self.config.chain_id} is usable: "
                + "; ".join(f"{e.name}: {e.reason} ({e.detail})" for e in self.pool.endpoints)
            )
        self.ctx.op_stack = await self.ctx.client.has_code(GAS_PRICE_ORACLE)
        await self.nonces.sync()
        self._started = True
        log.info(
            "transmission_started",
            sender=self.ctx.sender,
            chain_id=self.config.chain_id,
            op_stack=self.ctx.op_stack,
            rpcs=[e.name for e in self.pool.endpoints],
        )
        if run_loop:
            self._task = asyncio.create_task(self._loop(), name="transmission-manager")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._started = False
        await self.pool.close()

    async def _loop(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.config.poll_interval)

    async def tick(self) -> None:
        """One pass of every job, in order: RPC health, nonce sync, balance, confirmer,
        resender, broadcaster. A failing job is reported in health, never raised."""
        ctx = self.ctx
        ctx.new_tick()
        if time.monotonic() - self._last_health_check >= self.config.health_interval:
            self._last_health_check = time.monotonic()
            await self.pool.check_health()
        try:
            head = await ctx.client.head()
            if ctx.nonce_dirty:
                await self.nonces.sync()
            await self.balance.refresh()
        except (RpcError, TransmissionError) as exc:
            ctx.problems.report("chain", str(exc))
            return
        ctx.problems.clear("chain")
        for job in (self.confirmer, self.resender, self.broadcaster):
            try:
                await job.run(head)
            except (RpcError, TransmissionError) as exc:
                ctx.problems.report(job.name, str(exc))
            except Exception as exc:  # a bug must not kill the loop; it is logged in full
                log.exception("transmission_job_crashed", job=job.name)
                ctx.problems.report(job.name, f"internal error: {type(exc).__name__}: {exc}")
            else:
                if job.name != "broadcaster":
                    ctx.problems.clear(job.name)
            if ctx.nonce_dirty:
                try:
                    await self.nonces.sync()
                except (RpcError, TransmissionError) as exc:
                    ctx.problems.report("nonce-syncer", str(exc))
        counts = ctx.store.counts()
        ctx.metrics.set_pending({s.value: counts.get(s, 0) for s in State if s not in TERMINAL})

    def health(self) -> HealthReport:
        ctx = self.ctx
        parts = []
        rpc = self.pool.health()
        live = sum(1 for h in rpc.values() if h["ok"])
        demoted = "; ".join(f"{n}: {h['reason']}" for n, h in rpc.items() if not h["ok"])
        if live == 0:
            parts.append(HealthReport("rpc", "failed", demoted or "no endpoint"))
        else:
            parts.append(HealthReport("rpc", "degraded" if demoted else "ok", demoted))
        for part, problem in sorted(ctx.problems.active.items()):
            parts.append(HealthReport(part, "degraded", problem))
        if not self._started:
            parts.append(HealthReport("service", "failed", "not started"))
        elif self._task is not None and self._task.done():
            parts.append(HealthReport("service", "failed", "the job loop stopped"))
        return HealthReport.merge(self.name, parts)
