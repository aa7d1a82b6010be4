"""The composition root: one place that wires storage, feeds, the scheduler and the API.

Each service is handed the few things it uses (its config section, the engine, the
registry, the feed runners), never the node.

Start order: storage check → feeds (restore) → scheduler → [transaction manager →
network → landed-report follower] → API. Stop is the reverse;
stopping the feeds flushes their buffers and checkpoints every model, so a restart
resumes with nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping

import aiohttp
import structlog
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry, Gauge

from oracle.api.pull import PullApi
from oracle.api.server import ApiService, NodeView
from oracle.api.stream import ReportStream
from oracle.config.feeds import FeedSpec
from oracle.config.node import NodeConfig, SchedulerConfig
from oracle.errors import MiraError
from oracle.node.chain_view import ChainFeed, ChainView
from oracle.node.feeds import (
    FeedRunner,
    checkpoint_in_slices,
    poll_http_feeds,
    polling_pipelines,
    restore_runners,
)
from oracle.node.gc_watch import GcWatch
from oracle.node.keys import NetworkSetup, NodeKeys
from oracle.node.landed import LandedReportService
from oracle.node.loop_view import LoopView, loop_sources
from oracle.node.network import NetworkService
from oracle.node.pipeline import FeedMetrics, checkpoint_together, flush_unstored
from oracle.node.registered import RegisteredModels
from oracle.node.retention import Retention
from oracle.node.transmission import TransmissionService
from oracle.reporting import rounds
from oracle.service import Health, Service, ServiceGroup
from oracle.storage import Store, make_engine, require_current

log = structlog.get_logger(__name__)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector paused (then as it was): while a node builds its
    long-lived heap at start-up (10,000 feed specs, their runners, their restored models:
    millions of objects, none of them garbage), its full passes over that growing heap
    free nothing (10,000 runners built in 0.8 s with them, 0.25 s without). The feeds
    service then collects once and freezes that heap (:meth:`FeedsService.start`)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


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

    def __init__(self, runners: MutableMapping[str, FeedRunner]) -> None:
        self.runners = runners
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()
        for runner in self.runners.values():
            runner.attach_http(self.session)
        with gc_paused():
            restore_runners(list(self.runners.values()))  # a few queries per few hundred feeds
        gc.collect()
        gc.freeze()  # the start-up heap (datasets, modules) is not rescanned by the GC

    async def stop(self) -> None:
        try:  # every feed in one write (flushes first)
            checkpoint_together([r.pipeline for r in self.runners.values()])
        except Exception as exc:
            log.error("feed.checkpoint_failed", feeds=len(self.runners), error=str(exc))
            for runner in self.runners.values():  # one by one: a bad feed costs only itself
                try:
                    runner.pipeline.checkpoint()
                except Exception as exc:
                    log.error("feed.checkpoint_failed", feed=runner.spec.id, error=str(exc))
        if self.session is not None:
            await self.session.close()

    def health(self) -> Health:
        now = time.time_ns() // 1_000_000
        children = {fid: r.health(now) for fid, r in self.runners.items()}
        ok = all(h.ok for h in children.values())
        return Health(ok, "", children)


_Job = Callable[[], Awaitable[None]]


class SchedulerService:
    """Polls every feed, and runs the node's periodic flush, checkpoint and heartbeat
    check, and with a retention window its pruning."""

    name = "scheduler"

    def __init__(
        self,
        config: SchedulerConfig,
        runners: MutableMapping[str, FeedRunner],
        *,
        flush: _Job,
        checkpoint: _Job,
        check_heartbeats: _Job,
        prune: _Job | None = None,
    ) -> None:
        self.config = config
        self.runners = runners
        self.jobs = {"flush": flush, "checkpoint": checkpoint, "heartbeat": check_heartbeats}
        if prune is not None:
            self.jobs["prune"] = prune
        self.scheduler = AsyncIOScheduler()

    def add_runner(self, key: str, runner: FeedRunner) -> None:
        """Poll ``runner`` from now on (at start, or a model registered on-chain).

        Feeds with only HTTP sources are polled together, one job per poll interval
        (oracle.node.feeds.poll_http_feeds: one request per distinct URL, one write): a
        job per feed costs the scheduler more than the feed itself once a node carries
        thousands. The others (replay, chain events) keep a job each."""
        if runner.http_only:
            interval = runner.spec.poll_interval_s
            job_id = f"poll-http:{interval}"
            if self.scheduler.get_job(job_id) is None:
                self.scheduler.add_job(
                    self._poll_http,
                    "interval",
                    seconds=interval,
                    args=[interval],
                    id=job_id,
                    max_instances=1,
                    coalesce=True,
                )
            return
        self.scheduler.add_job(
            runner.poll,
            "interval",
            seconds=runner.spec.poll_interval_s if runner.replay is None else 0.05,
            id=f"poll:{key}",
            max_instances=1,
            coalesce=True,
        )

    async def _poll_http(self, interval: float) -> None:
        # the live mapping: a runner added or removed since the last poll is (not) polled
        await poll_http_feeds(
            [r for r in self.runners.values() if r.http_only and r.spec.poll_interval_s == interval]
        )

    def remove_runner(self, key: str) -> None:
        # an HTTP feed leaves its group's poll with the live mapping (the caller drops it)
        with contextlib.suppress(JobLookupError):
            self.scheduler.remove_job(f"poll:{key}")

    async def start(self) -> None:
        cfg = self.config
        for key, runner in self.runners.items():
            self.add_runner(key, runner)
        every = {
            "flush": cfg.flush_every_s,
            "checkpoint": cfg.checkpoint_every_s,
            "heartbeat": cfg.heartbeat_check_every_s,
            "prune": cfg.prune_every_s,
        }
        for job_id, job in self.jobs.items():
            self.scheduler.add_job(
                job, "interval", seconds=every[job_id], id=job_id, max_instances=1, coalesce=True
            )
        self.scheduler.start()

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        await asyncio.sleep(0)

    def health(self) -> Health:
        return Health(bool(self.scheduler.running), "" if self.scheduler.running else "stopped")


class Node:
    def __init__(self, config: NodeConfig, feeds: list[FeedSpec]) -> None:
        self.config = config
        self.config_name = config.name
        self.registry = CollectorRegistry()
        self.metrics = FeedMetrics(self.registry)
        self.stale = Gauge(
            "mira_feed_stale", "1 if a feed missed its heartbeat", ["feed"], registry=self.registry
        )
        self._stale_shown: dict[str, int] = {}  # feed → the value mira_feed_stale shows
        self.gc_watch = GcWatch(self.registry)  # full GC passes made rare while it runs
        self.storage = StorageService(config.database.url)
        # the live mapping of every runner: models registered on-chain join and leave it
        # while the node runs (oracle.node.registered)
        self.runners: dict[str, FeedRunner] = {
            spec.id: FeedRunner(spec, self.storage.store, self.metrics) for spec in feeds
        }
        feeds_service = FeedsService(self.runners)
        # [database] retain_s: rows past the window are deleted periodically (absent: none)
        self.retention: Retention | None = None
        if config.database.retain_s is not None:
            self.retention = Retention(
                self.storage.store,
                config.database.retain_s,
                self.registry,
                lambda: [r.pipeline for r in list(self.runners.values())],
            )
        scheduler = SchedulerService(
            config.scheduler,
            self.runners,
            flush=self.flush,
            checkpoint=self.checkpoint,
            check_heartbeats=self.check_heartbeats,
            prune=None if self.retention is None else self.retention.run,
        )
        self.scheduler = scheduler
        services: list[Service] = [self.storage, feeds_service, scheduler]
        self.network: NetworkService | None = None
        self.transmission: TransmissionService | None = None
        self.reports: ReportStream | None = None
        self.chain: ChainView | None = None
        if config.network is not None:
            net = config.network
            # the keys are read once, for both services
            keys = NodeKeys(net.keys_dir, net.passphrase_file)
            setup = NetworkSetup(net, keys, self.storage.engine, self.registry)
            # reports go out through the manager: it starts before the network service
            # and stops after it
            self.transmission = TransmissionService(setup)
            services.append(self.transmission)
            self.network = NetworkService(setup, self.runners, self.transmission)
            services.append(self.network)
            api = config.api
            self.reports = ReportStream(
                self.registry,
                self._feed_id,
                max_clients=api.stream_max_clients,
                buffer=api.stream_buffer,
            )
            services.append(
                LandedReportService(
                    net.rpc_url,
                    net.oracle,
                    self.reports,
                    poll_s=api.stream_poll_s,
                    rpc_timeout_s=net.rpc_timeout_s,
                )
            )
            network = self.network
            self.chain = ChainView(
                net.rpc_url,
                net.oracle,
                self._chain_feeds,
                lambda: network.transmitter.sender,
                rpc_timeout_s=net.rpc_timeout_s,
            )
        self.registered: RegisteredModels | None = None
        if config.models.registry is not None:
            net_cfg = config.network
            if net_cfg is None:
                raise MiraError("[models] registry needs [network] (its rpc_url)")
            self.registered = RegisteredModels(
                config.models,
                net_cfg.rpc_url,
                self.storage.store,
                self.metrics,
                self.runners,
                round_period_ms=rounds.period_ms(net_cfg.round_period_s),
                switch_delay_ms=int(config.models.switch_after_s * 1000),
                session=lambda: feeds_service.session,
                add_runner=self._add_runner,
                remove_runner=self._remove_runner,
                feeds_changed=self._feeds_changed,
                rpc_timeout_s=net_cfg.rpc_timeout_s,
            )
            services.append(self.registered)
        # the RL loops of the policy feeds it runs (its own and registered), from their specs
        self.loop = LoopView(lambda: loop_sources([r.spec for r in list(self.runners.values())]))
        view = NodeView(
            name=config.name,
            health=self.health,
            feeds=self.runners,
            registry=self.registry,
            network=None if self.network is None else self.network.status,
            reports=self.reports,
            store=self.storage.store,
            chain=None if self.chain is None else self.chain.read,
            loop=self.loop.read,
            registered=None if self.registered is None else self.registered.status,
            registered_outputs=None if self.registered is None else self.registered.outputs,
            pull=(
                PullApi(self.network.pull_roots, self._feed_id)
                if self.network is not None and self.network.config.pull_verifier is not None
                else None
            ),
        )
        self.api = ApiService(config.api, view)
        self.services = ServiceGroup(config.name, [*services, self.api])

    async def start(self) -> None:
        await self.services.start()
        self.gc_watch.start()  # once the start-up heap is built and frozen (FeedsService)
        if self.chain is not None:  # its first read, before a client waits for it
            self.chain.warm()

    def _feed_id(self, name: str) -> bytes | None:
        """The on-chain id of a feed this node publishes (one per arm of a policy feed)."""
        for runner in self.runners.values():
            for output in runner.spec.outputs:
                if output.id == name:
                    return output.id_bytes32
        return None

    async def stop(self) -> None:
        if self.retention is not None:  # a pass in flight ends now, not when it is done
            self.retention.stop()
        try:
            await self.services.stop()
        finally:  # a stop cancelled mid-way (a second Ctrl-C) still puts the process's GC back
            self.gc_watch.stop()
            await self.loop.close()
            if self.chain is not None:
                await self.chain.close()

    def _chain_feeds(self) -> list[ChainFeed]:
        """The on-chain feeds of every spec the node runs now: its own and the registered
        models' (they join and leave ``runners`` while the node runs)."""
        return [
            ChainFeed(o.id, o.id_bytes32, runner.spec.decimals)
            for runner in list(self.runners.values())
            for o in runner.spec.outputs
        ]

    def _add_runner(self, key: str, runner: FeedRunner) -> None:
        self.runners[key] = runner
        self.scheduler.add_runner(key, runner)

    def _remove_runner(self, key: str) -> None:
        self.scheduler.remove_runner(key)
        self.runners.pop(key, None)
        if self._stale_shown.pop(key, None) is not None:
            self.stale.remove(key)  # a feed the node no longer runs is not shown stale

    def _feeds_changed(self) -> None:
        if self.network is not None:
            self.network.feeds_changed()

    def health(self) -> Health:
        return self.services.health()

    async def flush(self) -> None:
        # a group poll in progress stores its own rows when it ends (poll_http_feeds)
        flush_unstored(self.storage.engine, skip=polling_pipelines())

    async def checkpoint(self) -> None:
        await checkpoint_in_slices([runner.pipeline for runner in self.runners.values()])

    async def check_heartbeats(self) -> None:
        """``mira_feed_stale`` of every feed, set where it changed: a gauge's ``labels()``
        builds and checks its key and takes a lock, every feed every check (at 10,000
        feeds, ~4 % of a node's busy time in ``mira bench pull``, py-spy), while a feed's
        health rarely changes between two checks."""
        now = time.time_ns() // 1_000_000
        shown = self._stale_shown
        for fid, runner in list(self.runners.items()):
            stale = 0 if runner.health(now).ok else 1
            if shown.get(fid) != stale:
                self.stale.labels(fid).set(stale)
                shown[fid] = stale
