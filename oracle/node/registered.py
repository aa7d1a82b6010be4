"""Models registered on-chain, run by the node without a restart.

The service follows the ModelRegistry (oracle.registry.events), stores what it saw, and
for each approved version fetches, verifies and starts it (oracle.registry.fetch,
oracle.registry.verify): a new :class:`FeedRunner` joins the node's runners, the scheduler
polls it and the reporting rounds include its feeds. A new version of a running model runs
unreported from its own start point until its switch boundary, then replaces the old one
(whose rows and last checkpoint stay stored). Deactivation stops the model's runner: its
feeds are no longer reported, the proxies keep the last value.

Every refusal is stored with its reason, counted in ``mira_registry_rejections{reason}``
and served by ``GET /v1/models``; the node and its other feeds keep running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, Counter
from web3 import Web3

from oracle.chain.rpc import sync_web3
from oracle.config.feeds import FeedSpec
from oracle.config.node import ModelsConfig
from oracle.node.feeds import FeedRunner
from oracle.node.pipeline import FeedMetrics
from oracle.registry.errors import SpecRejected
from oracle.registry.events import RegistryFollower
from oracle.registry.fetch import fetch_spec
from oracle.registry.state import ModelInfo, StartPoint, apply, storage_id, switch_at_ms
from oracle.registry.verify import verify_spec
from oracle.retry import Backoff, wait_after_failure
from oracle.service import Health
from oracle.storage import Store
from oracle.storage.registry import RegistryStore, VersionRow

log = structlog.get_logger(__name__)

_BACKOFF = Backoff(0.5, 2.0, cap_s=30.0)
_FETCH_RETRIES = 3  # an unreachable URI is tried this many more times before giving up
_TICK_S = 0.05  # how often a pending version's switch boundary is checked


@dataclass
class _Pending:
    """A new version running unreported until its switch boundary."""

    runner: FeedRunner
    switch_at_ms: int


class RegistryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rejections = Counter(
            "mira_registry_rejections",
            "Registered model versions this node refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.deep_reorgs = Counter(
            "mira_registry_deep_reorgs",
            "Reorgs deeper than the registry's confirmation depth",
            registry=registry,
        )
        self.undecodable = Counter(
            "mira_registry_undecodable_logs",
            "Registry logs that did not decode",
            registry=registry,
        )
        self.rpc_errors = Counter(
            "mira_registry_rpc_errors", "Failed scans of the registry", registry=registry
        )


class RegisteredModels:
    """The registry follower and the runners of registered models (a node service)."""

    name = "registry"

    def __init__(
        self,
        config: ModelsConfig,
        rpc_url: str,
        store: Store,
        feed_metrics: FeedMetrics,
        runners: MutableMapping[str, FeedRunner],
        *,
        round_period_ms: int,
        switch_delay_ms: int,
        session: Callable[[], aiohttp.ClientSession | None],
        add_runner: Callable[[str, FeedRunner], None],
        remove_runner: Callable[[str], None],
        feeds_changed: Callable[[], None],
        rpc_timeout_s: float = 10.0,
        w3: Web3 | None = None,
    ) -> None:
        assert config.registry is not None
        self.config = config
        self.store = store
        self.feed_metrics = feed_metrics
        self.runners = runners
        self.period_ms = round_period_ms
        self.switch_delay_ms = switch_delay_ms
        self._session = session
        self._add_runner, self._remove_runner = add_runner, remove_runner
        self._feeds_changed = feeds_changed
        self.db = RegistryStore(store.engine, config.registry)
        self.metrics = RegistryMetrics(feed_metrics.registry)
        # no hidden retries inside web3: the follower's own loop retries, counts and logs
        self.w3 = w3 or sync_web3(rpc_url, timeout_s=rpc_timeout_s)
        self.follower = RegistryFollower(
            self.w3,
            config.registry,
            confirmations=config.confirmations,
            max_block_range=config.max_block_range,
            from_block=config.from_block,
        )
        self.models: dict[int, ModelInfo] = {}
        self.versions: dict[tuple[int, int], VersionRow] = {}
        self.active: dict[int, tuple[int, FeedRunner]] = {}  # model → (version, runner)
        self.pending: dict[int, tuple[int, _Pending]] = {}  # model → (version, pending)
        self._retry_at: dict[tuple[int, int], tuple[int, float]] = {}  # (attempts, when)
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._error: str | None = None
        self.scanned_to: int | None = None

    # -- service -----------------------------------------------------------------------------

    async def start(self) -> None:
        for event in self.db.events():
            apply(self.models, event)
        self.versions = self.db.versions()
        tip = self.db.scan_tip()
        self.scanned_to = None if tip is None else tip[0]
        await self._resume()
        await self._reconcile()
        self._task = asyncio.create_task(self._follow(), name="registry-follower")
        self._ticker = asyncio.create_task(self._tick(), name="registry-switch")

    async def stop(self) -> None:
        for task in (self._task, self._ticker):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for _, pending in self.pending.values():
            pending.runner.pipeline.checkpoint()

    def health(self) -> Health:
        return Health(self._error is None, self._error or "")

    async def _resume(self) -> None:
        """After a restart: run again each version that was running (from its stored,
        re-verified spec and its checkpoint); a successor waiting for its boundary is
        taken up by :meth:`_reconcile`."""
        for (model_id, version), row in sorted(self.versions.items()):
            model = self.models.get(model_id)
            if row.status != "running" or model is None or model.deactivated is not None:
                continue
            if model_id in self.active or version > model.approved_version:
                continue
            await self._load(model, version, row)

    # -- following ---------------------------------------------------------------------------

    async def _follow(self) -> None:
        failures = 0
        while True:
            try:
                await self.poll()
                failures = 0
                self._error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.metrics.rpc_errors.inc()
                self._error = f"{type(exc).__name__}: {exc}"[:300]
                await wait_after_failure(failures, _BACKOFF, log, "registry.scan_retry", exc)
                continue
            await asyncio.sleep(self.config.poll_s)

    async def poll(self) -> None:
        """Scan the confirmed blocks not seen yet, store their events, act on them."""
        tip = await asyncio.to_thread(self.db.scan_tip)
        batch = await asyncio.to_thread(self.follower.scan, tip)
        if batch.tip is not None:
            await asyncio.to_thread(self.db.record, batch.events, batch.tip)
            self.scanned_to = batch.tip[0]
        if batch.deep_reorg:
            self.metrics.deep_reorgs.inc()
        if batch.undecodable:
            self.metrics.undecodable.inc(len(batch.undecodable))
        for event in batch.events:
            apply(self.models, event)
        await self._reconcile()

    # -- acting on the registry --------------------------------------------------------------

    async def _reconcile(self) -> None:
        """Bring the runners in line with the registry: stop deactivated models, start
        approved versions not yet handled, retry unreachable fetches when due."""
        changed = False
        for model_id in sorted(self.models):
            model = self.models[model_id]
            if model.deactivated is not None:
                changed |= self._deactivate(model)
                continue
            version = model.approved_version
            if version == 0:
                continue
            running = self.active.get(model_id)
            waiting = self.pending.get(model_id)
            if (running and running[0] >= version) or (waiting and waiting[0] >= version):
                continue
            row = self.versions.get((model_id, version))
            refused = row is not None and row.status in ("rejected", "unsupported")
            if refused and row is not None and not self._retry_due(model_id, version, row):
                continue
            changed |= await self._load(model, version, row)
        if changed:
            self._feeds_changed()

    def _retry_due(self, model_id: int, version: int, row: VersionRow) -> bool:
        if row.reason != "unreachable":
            return False
        attempts, when = self._retry_at.get((model_id, version), (0, 0.0))
        return attempts < _FETCH_RETRIES and time.monotonic() >= when

    async def _load(self, model: ModelInfo, version: int, row: VersionRow | None) -> bool:
        info = model.versions[version]
        assert info.approved is not None
        key = (model.model_id, version)
        try:
            if row is not None and row.spec is not None and row.status in ("running", "accepted"):
                data = row.spec  # verified before this restart: no fetch needed
            else:
                session = self._session()
                if session is None:
                    return False  # the feeds service has not started yet
                data = await fetch_spec(info.spec_uri, self.config, session)
            spec = verify_spec(
                data,
                uri=info.spec_uri,
                spec_hash=info.spec_hash,
                feed_ids=model.feed_ids,
                policy=self.config,
            )
            self._check_room(model.model_id)
            runner = self._build(spec, model.model_id, version, info.approved)
        except SpecRejected as exc:
            self._reject(key, exc)
            return False
        old = self.active.get(model.model_id)
        stale = self.pending.pop(model.model_id, None)
        if stale is not None:  # a newer version overtook one still waiting: never reported
            self._retire(model.model_id, stale[0], stale[1].runner, "superseded")
        self._add_runner(runner.pipeline.storage_id, runner)
        if old is None:
            self._run(model.model_id, version, runner, data)
        else:
            at = switch_at_ms(info.approved.time_ms, self.period_ms, self.switch_delay_ms)
            runner.reporting = False
            self.pending[model.model_id] = (version, _Pending(runner, at))
            self._set(key, "accepted", spec=data)
            log.info("registry.version_waiting", model=model.model_id, version=version, at_ms=at)
        return True

    def _check_room(self, model_id: int) -> None:
        carried = set(self.active) | set(self.pending)
        if model_id not in carried and len(carried) >= self.config.max_models:
            raise SpecRejected(
                "local_policy",
                f"this node carries at most {self.config.max_models} registered models",
            )

    def _build(self, spec: FeedSpec, model_id: int, version: int, start: StartPoint) -> FeedRunner:
        sid = storage_id(model_id, version)
        for other in self.runners.values():  # a local spec's feeds are not taken over
            if other.pipeline.storage_id == other.spec.id and any(
                o.id in {x.id for x in spec.outputs} for o in other.spec.outputs
            ):
                raise SpecRejected(
                    "local_policy", f"feed {spec.id} is also one of this node's local feeds"
                )
        try:
            runner = FeedRunner(spec, self.store, self.feed_metrics, storage_id=sid, start=start)
            session = self._session()
            if session is not None:
                runner.attach_http(session)
            runner.restore()
        except Exception as exc:
            raise SpecRejected("start_failed", f"{type(exc).__name__}: {exc}") from exc
        return runner

    def _run(self, model_id: int, version: int, runner: FeedRunner, spec: bytes | None) -> None:
        runner.reporting = True
        self.active[model_id] = (version, runner)
        self._set((model_id, version), "running", spec=spec)
        log.info("registry.version_running", model=model_id, version=version, feed=runner.spec.id)

    def _retire(self, model_id: int, version: int, runner: FeedRunner, status: str) -> None:
        try:
            runner.pipeline.checkpoint()  # the last state stays stored, for audit
        except Exception as exc:
            log.error("registry.checkpoint_failed", model=model_id, error=str(exc)[:300])
        self._remove_runner(runner.pipeline.storage_id)
        self._set((model_id, version), status)

    def _deactivate(self, model: ModelInfo) -> bool:
        changed = False
        running = self.active.pop(model.model_id, None)
        if running is not None:
            self._retire(model.model_id, running[0], running[1], "deactivated")
            changed = True
        waiting = self.pending.pop(model.model_id, None)
        if waiting is not None:
            self._retire(model.model_id, waiting[0], waiting[1].runner, "deactivated")
            changed = True
        for (model_id, version), row in list(self.versions.items()):
            # deactivated while this node was down: what it ran is not resumed
            if model_id == model.model_id and row.status in ("running", "accepted"):
                self._set((model_id, version), "deactivated")
        return changed

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            try:
                self.switch_due(time.time_ns() // 1_000_000)
            except Exception as exc:  # never let the switch loop die
                log.error("registry.switch_failed", error=str(exc)[:300])

    def switch_due(self, now_ms: int) -> None:
        """Replace each running version whose successor's boundary has come."""
        changed = False
        for model_id, (version, pending) in list(self.pending.items()):
            if now_ms < pending.switch_at_ms:
                continue
            del self.pending[model_id]
            old = self.active.pop(model_id, None)
            if old is not None:
                self._retire(model_id, old[0], old[1], "superseded")
            self._run(model_id, version, pending.runner, None)
            changed = True
        if changed:
            self._feeds_changed()

    # -- records -----------------------------------------------------------------------------

    def _reject(self, key: tuple[int, int], exc: SpecRejected) -> None:
        self.metrics.rejections.labels(exc.reason).inc()
        attempts, _ = self._retry_at.get(key, (0, 0.0))
        if exc.reason == "unreachable":
            self._retry_at[key] = (attempts + 1, time.monotonic() + _BACKOFF.delay(attempts + 1))
        self._set(key, exc.status, reason=exc.reason, detail=exc.detail)
        log.warning(
            "registry.version_refused",
            model=key[0],
            version=key[1],
            reason=exc.reason,
            detail=exc.detail[:300],
        )

    def _set(
        self,
        key: tuple[int, int],
        status: str,
        *,
        reason: str | None = None,
        detail: str | None = None,
        spec: bytes | None = None,
    ) -> None:
        self.db.set_version(*key, status, reason=reason, detail=detail, spec=spec)
        old = self.versions.get(key)
        self.versions[key] = VersionRow(
            key[0],
            key[1],
            status,
            reason,
            detail,
            spec if spec is not None else (old.spec if old else None),
            time.time_ns() // 1_000_000,
        )

    def outputs(self, model_id: int, version: int, limit: int) -> dict[str, Any] | None:
        """A version's newest stored outputs (at most ``limit`` per published feed, oldest
        first) for GET /v1/models/ID/outputs; None for a version this node never ran."""
        model = self.models.get(model_id)
        row = self.versions.get((model_id, version))
        if model is None or row is None or row.spec is None:
            return None
        sid = storage_id(model_id, version)
        runner = self.runners.get(sid)
        if runner is not None:
            runner.pipeline.flush()
            spec = runner.spec
        else:  # superseded or deactivated: its rows stay, read under its stored spec
            info = model.versions[version]
            spec = verify_spec(
                row.spec,
                uri=info.spec_uri,
                spec_hash=info.spec_hash,
                feed_ids=model.feed_ids,
                policy=self.config,
            )
        feeds: dict[str, list[dict[str, Any]]] = {}
        for o in spec.outputs:
            key = f"{sid}:{o.id}"
            newest = self.store.latest_output(key)
            after = -1 if newest is None else newest.seq - limit
            feeds["0x" + o.id_bytes32.hex()] = [
                {
                    "feed": o.id,
                    "seq": r.seq,
                    "observed_at_ms": r.observed_at_ms,
                    "value": str(r.value),
                    "commitment": "0x" + r.commitment.hex(),
                    "publish": r.publish,
                }
                for r in self.store.outputs(key, after_seq=after, limit=limit)
            ]
        return {"id": model_id, "version": version, "storage_id": sid, "outputs": feeds}

    # -- status ------------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One entry per version of every model the registry holds (GET /v1/models)."""
        out: list[dict[str, Any]] = []
        for model_id in sorted(self.models):
            model = self.models[model_id]
            runners = {}
            if model_id in self.active:
                runners[self.active[model_id][0]] = self.active[model_id][1]
            if model_id in self.pending:
                runners[self.pending[model_id][0]] = self.pending[model_id][1].runner
            for version in sorted(model.versions):
                info = model.versions[version]
                row = self.versions.get((model_id, version))
                # only approved versions are known here (oracle.registry.events)
                status = row.status if row is not None else "approved"
                if row is None and version < model.approved_version:
                    status = "superseded"
                if model.deactivated is not None and status == "approved":
                    status = "deactivated"
                runner = runners.get(version)
                out.append(
                    {
                        "id": model_id,
                        "version": version,
                        "status": status,
                        "reason": None if row is None else row.reason,
                        "detail": None if row is None else row.detail,
                        "feed_ids": ["0x" + f.hex() for f in model.feed_ids],
                        "spec_hash": "0x" + info.spec_hash.hex(),
                        "spec_uri": info.spec_uri,
                        "approved_block": None if info.approved is None else info.approved.block,
                        "feed": None if runner is None else runner.spec.id,
                        "reporting": runner is not None and runner.reporting,
                        "commitment": None
                        if runner is None
                        else "0x" + runner.pipeline.model.commitment().hex(),
                        "storage_id": storage_id(model_id, version),
                    }
                )
        return out
