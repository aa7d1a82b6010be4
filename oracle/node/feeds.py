"""The feed service: one runner per feed, fed by its sources on the scheduler."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp
import structlog

from oracle.config.feeds import FeedSpec, HttpSourceSpec, ReplaySourceSpec
from oracle.errors import MiraError
from oracle.models.runner import Rejected
from oracle.node.pipeline import FeedMetrics, FeedPipeline
from oracle.node.service import Health
from oracle.sources.http import HttpSource
from oracle.sources.replay import RawObservation, ReplaySource
from oracle.storage import Store

log = structlog.get_logger(__name__)


class FeedRunner:
    """Polls one feed's sources and pushes what they return through its pipeline."""

    def __init__(
        self, spec: FeedSpec, store: Store, metrics: FeedMetrics, *, replay_batch: int = 1000
    ) -> None:
        self.spec = spec
        self.pipeline = FeedPipeline(spec, store, metrics)
        self.replay: ReplaySource | None = None
        self.http: list[HttpSource] = []
        self.replay_batch = replay_batch
        self.position = 0  # next replay row
        self.restored = False
        self.last_poll_error: str | None = None
        for source in spec.sources:
            if isinstance(source, ReplaySourceSpec):
                self.replay = ReplaySource(source)
                missing = sorted(
                    (set(spec.features.fields) | {spec.features.target}) - self.replay.columns()
                )
                if missing:
                    have = ", ".join(sorted(self.replay.columns()))
                    raise MiraError(
                        f"{spec.file}: features name columns {', '.join(missing)} that "
                        f"{source.dataset} does not have (it has {have})"
                    )
            elif not isinstance(source, HttpSourceSpec):
                raise MiraError(
                    f"{spec.file}: source {source.name}: kind chain_events is not wired into "
                    "the node yet"
                )

    def attach_http(self, session: aiohttp.ClientSession) -> None:
        self.http = [
            HttpSource(s, session) for s in self.spec.sources if isinstance(s, HttpSourceSpec)
        ]

    def restore(self) -> None:
        self.pipeline.restore()
        key = self.pipeline.last_dedup_key
        if self.replay is not None and key and key.startswith("row:"):
            self.position = int(key[4:]) + 1
        self.restored = True

    @property
    def finished(self) -> bool:
        return self.replay is not None and self.position >= self.replay.total

    async def poll(self) -> None:
        try:
            if self.replay is not None:
                for obs in self.replay.read(self.position, self.replay_batch):
                    self.pipeline.ingest(obs)
                    self.position += 1
            elif self.http:
                await self._poll_http()
            self.last_poll_error = None
        except Exception as exc:  # a feed's failure must not stop the others
            self.last_poll_error = f"{type(exc).__name__}: {exc}"
            log.error("feed.poll_failed", feed=self.spec.id, error=self.last_poll_error)

    async def _poll_http(self) -> None:
        results = await asyncio.gather(*(s.fetch() for s in self.http), return_exceptions=True)
        values: list[float] = []
        for source, result in zip(self.http, results, strict=True):
            if isinstance(result, Rejected):
                self.pipeline.reject(source.spec.name, result.reason, result.detail)
            elif isinstance(result, BaseException):
                self.pipeline.reject(
                    source.spec.name, "error", f"{type(result).__name__}: {result}"
                )
            else:
                values.append(result)
        now_ms = time.time_ns() // 1_000_000
        if len(values) < self.spec.min_sources:
            self.pipeline.reject(
                "aggregate",
                "too_few_sources",
                f"{len(values)} valid answers, the feed needs {self.spec.min_sources}",
            )
            return
        value = statistics.median(values)
        self.pipeline.ingest(RawObservation("median", now_ms, None, {"value": value}))

    def status(self) -> dict[str, Any]:
        out = self.pipeline.last_output
        spec = self.spec
        return {
            "id": spec.id,
            "feed_id_bytes32": "0x" + spec.id_bytes32.hex(),
            "description": spec.description,
            "decimals": spec.decimals,
            "output_kind": spec.output_kind,
            "latest": None
            if out is None
            else {
                "seq": out.seq,
                "value": str(out.value),
                "raw_value": out.raw_value,
                "observed_at_ms": out.observed_at_ms,
                "model_commitment": "0x" + out.commitment.hex(),
                "publish": out.publish,
            },
            "metrics": self.pipeline.model.metrics(),
            "drift": {
                "events": self.pipeline.model.state.drifts,
                "last_drift_seq": self.pipeline.model.state.last_drift_seq,
            },
            "last_error": self.last_poll_error or self.pipeline.last_error,
            "rejections": self.pipeline.store.rejection_counts(spec.id),
        }

    def health(self, now_ms: int) -> Health:
        if not self.restored:
            return Health(False, "not restored yet")
        out = self.pipeline.last_output
        if self.replay is None and out is not None:
            age_s = (now_ms - out.observed_at_ms) / 1000
            if age_s > 2 * self.spec.heartbeat_s:
                return Health(
                    False, f"no output for {age_s:.0f} s (heartbeat {self.spec.heartbeat_s} s)"
                )
        if self.last_poll_error:
            return Health(False, self.last_poll_error)
        return Health(True)
