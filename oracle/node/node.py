"""The composition root: one place that wires storage, feeds, the scheduler and the API.

Start order: storage check → feeds (restore) → scheduler → [transaction manager →
network] → API. Stop is the reverse;
stopping the feeds flushes their buffers and checkpoints every model, so a restart
resumes with nothing lost.
"""

from __future__ import annotations

import asyncio
import gc
import time

import aiohttp
import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry, Gauge

from oracle.config.feeds import FeedSpec
from oracle.config.node import NodeConfig
from oracle.node.feeds import FeedRunner
from oracle.node.network import NetworkService
from oracle.node.pipeline import FeedMetrics
from oracle.node.service import Health, Service, ServiceGroup
from oracle.node.transmission import TransmissionService
from oracle.storage import Store, make_engine, require_current

log = structlog.get_logger(__name__)


class StorageService:
    name = "storage"

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.store = Store(self.engine)
        self._ok = False

    async def start(self) -> None:
        require_current(self.engine)  # refuses an unmigrated or behind database
        self._ok = True

    async def stop(self) -> None:
        self.engine.dispose()
        self._ok = False

    def health(self) -> Health:
        return Health(self._ok, "" if self._ok else "not started")


class FeedsService:
    name = "feeds"

    def __init__(self, node: Node) -> None:
        self.node = node
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()
        for runner in self.node.runners.values():
            runner.attach_http(self.session)
            runner.restore()
        gc.collect()
        gc.freeze()  # the start-up heap (datasets, modules) is not rescanned by the GC

    async def stop(self) -> None:
        for runner in self.node.runners.values():
            try:
                runner.pipeline.checkpoint()  # flushes first
            except Exception as exc:
                log.error("feed.checkpoint_failed", feed=runner.spec.id, error=str(exc))
        if self.session is not None:
            await self.session.close()

    def health(self) -> Health:
        now = time.time_ns() // 1_000_000
        children = {fid: r.health(now) for fid, r in self.node.runners.items()}
        ok = all(h.ok for h in children.values())
        return Health(ok, "", children)


class SchedulerService:
    name = "scheduler"

    def __init__(self, node: Node) -> None:
        self.node = node
        self.scheduler = AsyncIOScheduler()

    async def start(self) -> None:
        cfg = self.node.config.scheduler
        for runner in self.node.runners.values():
            self.scheduler.add_job(
                runner.poll,
                "interval",
                seconds=runner.spec.poll_interval_s if runner.replay is None else 0.05,
                id=f"poll:{runner.spec.id}",
                max_instances=1,
                coalesce=True,
            )
        self.scheduler.add_job(
            self.node.flush,
            "interval",
            seconds=cfg.flush_every_s,
            id="flush",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self.node.checkpoint,
            "interval",
            seconds=cfg.checkpoint_every_s,
            id="checkpoint",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self.node.check_heartbeats,
            "interval",
            seconds=cfg.heartbeat_check_every_s,
            id="heartbeat",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.start()

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        await asyncio.sleep(0)

    def health(self) -> Health:
        return Health(bool(self.scheduler.running), "" if self.scheduler.running else "stopped")


class ApiService:
    name = "api"

    def __init__(self, node: Node) -> None:
        self.node = node
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        from oracle.api.server import make_app

        cfg = self.node.config.api
        self.runner = web.AppRunner(make_app(self.node, max_body_bytes=cfg.max_body_bytes))
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.host, cfg.port)
        await site.start()
        addresses = self.runner.addresses
        self.port = int(addresses[0][1]) if addresses else cfg.port
        log.info("api.listening", host=cfg.host, port=self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def health(self) -> Health:
        return Health(self.runner is not None)


class Node:
    def __init__(self, config: NodeConfig, feeds: list[FeedSpec]) -> None:
        self.config = config
        self.config_name = config.name
        self.registry = CollectorRegistry()
        self.metrics = FeedMetrics(self.registry)
        self.stale = Gauge(
            "mira_feed_stale", "1 if a feed missed its heartbeat", ["feed"], registry=self.registry
        )
        self.storage = StorageService(config.database.url)
        self.runners = {
            spec.id: FeedRunner(spec, self.storage.store, self.metrics) for spec in feeds
        }
        self.api = ApiService(self)
        services: list[Service] = [self.storage, FeedsService(self), SchedulerService(self)]
        self.network: NetworkService | None = None
        self.transmission: TransmissionService | None = None
        if config.network is not None:
            # reports go out through the manager: it starts before the network service
            # and stops after it
            self.transmission = TransmissionService(self)
            services.append(self.transmission)
            self.network = NetworkService(self)
            services.append(self.network)
        self.services = ServiceGroup(config.name, [*services, self.api])

    async def start(self) -> None:
        await self.services.start()

    async def stop(self) -> None:
        await self.services.stop()

    def health(self) -> Health:
        return self.services.health()

    async def flush(self) -> None:
        for runner in self.runners.values():
            runner.pipeline.flush()

    async def checkpoint(self) -> None:
        for runner in self.runners.values():
            runner.pipeline.checkpoint()

    async def check_heartbeats(self) -> None:
        now = time.time_ns() // 1_000_000
        for fid, runner in self.runners.items():
            self.stale.labels(fid).set(0 if runner.health(now).ok else 1)
