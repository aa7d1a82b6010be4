"""The feed service: one runner per feed, fed by its sources on the scheduler."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import Any

import aiohttp
import structlog

from oracle.config.feeds import ChainEventSourceSpec, FeedSpec, HttpSourceSpec, ReplaySourceSpec
from oracle.errors import MiraError, Rejected
from oracle.models import StepOutput
from oracle.node.pipeline import (
    FeedMetrics,
    FeedPipeline,
    checkpoint_off_loop,
    flush_off_loop,
    restore_together,
)
from oracle.registry.state import StartPoint
from oracle.reporting.report import FeedUpdate
from oracle.service import Health
from oracle.sources.chain_events import BlockRef, ChainEventSource
from oracle.sources.http import HttpSource
from oracle.sources.replay import RawObservation, ReplaySource
from oracle.storage import Store
from oracle.storage.chain_scan import ChainScanStore

log = structlog.get_logger(__name__)
_INGEST_SLICE = 500  # feeds ingested between two yields to the event loop in a group poll
CHECKPOINT_SLICE = 500  # feeds checkpointed in one transaction, between two yields


class FeedRunner:
    """Polls one feed's sources and pushes what they return through its pipeline.

    A model version registered on-chain runs with ``storage_id`` (its own rows) and
    ``start`` (its approval: the first observation it learns from, the same on every member,
    see oracle.registry.state); ``reporting`` says whether the rounds report its outputs
    (a new version runs unreported until its switch boundary)."""

    def __init__(
        self,
        spec: FeedSpec,
        store: Store,
        metrics: FeedMetrics,
        *,
        replay_batch: int = 1000,
        storage_id: str | None = None,
        start: StartPoint | None = None,
    ) -> None:
        self.spec = spec
        self.start = start
        self.reporting = True
        self.pipeline = FeedPipeline(spec, store, metrics, storage_id=storage_id)
        self.replay: ReplaySource | None = None
        self.http: list[HttpSource] = []
        self.chain: ChainEventSource | None = None
        self.chain_store: ChainScanStore | None = None
        self.reorgs = 0
        self.orphaned_logs = 0
        self.replay_batch = replay_batch
        self.position = 0  # next replay row
        self.start_position = 0  # the first replay row a registered version learns from
        self.restored = False
        self.last_poll_error: str | None = None
        self._latest: tuple[StepOutput, list[FeedUpdate]] | None = None
        self._older: tuple[StepOutput, list[FeedUpdate]] | None = None  # see updates_at
        for source in spec.sources:
            if isinstance(source, ReplaySourceSpec):
                self.replay = ReplaySource(source)
                missing = sorted(set(spec.features.record_fields) - self.replay.columns())
                if missing:
                    have = ", ".join(sorted(self.replay.columns()))
                    raise MiraError(
                        f"{spec.file}: features name columns {', '.join(missing)} that "
                        f"{source.dataset} does not have (it has {have})"
                    )
                if start is not None:
                    self.start_position = self.position = self._first_row_after(start.time_ms)
            elif isinstance(source, ChainEventSourceSpec):
                if start is not None:  # the events of the blocks after the approval's
                    source = replace(source, from_block=max(source.from_block, start.block + 1))
                self.chain = ChainEventSource(source)
                self.chain_store = ChainScanStore(
                    store.engine, self.pipeline.storage_id, source.name
                )

    def _first_row_after(self, time_ms: int) -> int:
        """The first replay row observed after ``time_ms`` (rows are in time order)."""
        replay = self.replay
        assert replay is not None
        spec = replay.spec
        if spec.time_field is None or spec.passes > 1:  # the synthetic clock: computed
            if time_ms < spec.start_ms:
                return 0
            return min(replay.total, (time_ms - spec.start_ms) // spec.step_ms + 1)
        for i, obs in enumerate(replay.read(0)):  # one pass of a CSV's own times
            if obs.observed_at_ms > time_ms:
                return i
        return replay.total

    def attach_http(self, session: aiohttp.ClientSession) -> None:
        self.http = [
            HttpSource(s, session) for s in self.spec.sources if isinstance(s, HttpSourceSpec)
        ]

    def restore(self) -> None:
        """Rebuild the feed's model and its sources' positions from storage
        (:func:`restore_runners` of this one runner)."""
        restore_runners([self])

    def _prime(self) -> None:
        if self.replay is not None and self.start is not None and self.spec.features.lags:
            # a registered version's lags, from the rows before its start point (a checkpoint
            # restored next carries its own)
            first = max(0, self.start_position - self.spec.features.lags)
            for obs in self.replay.read(first, self.start_position - first):
                self.pipeline.prime(obs)

    def _resume(self) -> None:
        """Its sources' positions, once the pipeline is restored."""
        key = self.pipeline.last_dedup_key
        if self.replay is not None and key and key.startswith("row:"):
            self.position = int(key[4:]) + 1
        elif self.replay is not None:
            self.position = self.start_position
        if self.chain is not None and self.chain_store is not None:
            self.chain.load([BlockRef(*b) for b in self.chain_store.blocks()])
        self.restored = True

    @property
    def finished(self) -> bool:
        return self.replay is not None and self.position >= self.replay.total

    def _released(self, until_ms: float) -> Iterator[RawObservation]:
        """The replay's next batch of rows, up to the first observed after ``until_ms``.
        The position moves past a row once the pipeline asks for the next one, i.e. once
        that row is consumed or refused: a model error on a row leaves it the next."""
        assert self.replay is not None
        for obs in self.replay.read(self.position, self.replay_batch):
            if obs.observed_at_ms > until_ms:
                return
            yield obs
            self.position += 1

    async def poll(self) -> None:
        try:
            if self.replay is not None:
                # realtime: a row is released once the wall clock reaches its time
                until_ms = time.time() * 1000 if self.replay.spec.realtime else math.inf
                self.pipeline.ingest_many(self._released(until_ms))
            elif self.chain is not None:
                await self._poll_chain()
            elif self.http:
                await self._poll_http()
                # a live reading cannot be read again: store it before the poll ends, so
                # a crash (even SIGKILL) loses at most the poll in flight, never a reading
                # the feed already consumed
                try:
                    self.pipeline.flush()
                except Exception:
                    self.pipeline.reload()  # the model must not keep what was not stored
                    raise
            self.last_poll_error = None
        except Exception as exc:  # a feed's failure must not stop the others
            self.last_poll_error = f"{type(exc).__name__}: {exc}"
            log.error("feed.poll_failed", feed=self.spec.id, error=self.last_poll_error)

    @property
    def http_only(self) -> bool:
        """Whether every source is HTTP: such feeds of one poll interval are polled
        together (:func:`poll_http_feeds`)."""
        return self.replay is None and self.chain is None and bool(self.spec.sources)

    async def _poll_http(self) -> None:
        results = await asyncio.gather(*(s.fetch() for s in self.http), return_exceptions=True)
        self._ingest_http(results)

    def ingest_answers(self, answers: Mapping[object, Any]) -> None:
        """Ingest this feed's reading from answers fetched for many feeds at once (by
        request, :attr:`HttpSource.request`; an exception where the request failed)."""
        results: list[float | BaseException] = []
        for source in self.http:
            answer = answers[source.request]
            if isinstance(answer, BaseException):
                results.append(answer)
                continue
            try:
                results.append(source.value_of(answer))
            except Rejected as exc:
                results.append(exc)
        self._ingest_http(results)

    def _ingest_http(self, results: Sequence[float | BaseException]) -> None:
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
        if self.start is not None and now_ms <= self.start.time_ms:
            return  # a registered version learns from readings after its approval only
        if len(values) < self.spec.min_sources:
            self.pipeline.reject(
                "aggregate",
                "too_few_sources",
                f"{len(values)} valid answers, the feed needs {self.spec.min_sources}",
            )
            return
        # one answer (the common case) is its own median: no statistics call per feed a poll
        value = values[0] if len(values) == 1 else statistics.median(values)
        self.pipeline.ingest(RawObservation("median", now_ms, None, {"value": value}))

    async def _poll_chain(self) -> None:
        """Scan (RPC, in a worker thread), then ingest what was never processed, and store
        the observations with the source's bookkeeping in one transaction."""
        chain, chain_store = self.chain, self.chain_store
        assert chain is not None and chain_store is not None
        if self.pipeline.last_output is None and self.pipeline.model.seq == 0:
            await self._offer_prior(chain)
        batch = await asyncio.to_thread(chain.scan)
        if batch.empty:
            return
        source = chain.spec.name
        refs = [
            (s.ref.block_number, s.ref.block_hash, s.ref.log_index, s.ref.tx_hash, s.ref.tx_ordinal)
            for s in batch.logs
        ]
        try:
            known = chain_store.known(refs)
            fresh = []
            target = self.spec.features.target or "value"  # a chain source's one value
            for i, scanned in enumerate(batch.logs):
                if i in known:
                    continue
                fresh.append(refs[i])
                if scanned.rejection is not None:
                    exc = scanned.rejection
                    self.pipeline.reject(source, exc.reason, exc.detail, scanned.raw)
                    continue
                # strictly increasing along the chain (see oracle.sources.chain_events)
                at = max(scanned.block_time_ms, self.pipeline.model.state.last_observed_at_ms + 1)
                record = scanned.record if scanned.record is not None else {target: scanned.value}
                self.pipeline.ingest(RawObservation(source, at, scanned.ref.dedup_key, record))
            tip = max(b.number for b in batch.blocks) if batch.blocks else None
            self.pipeline.flush(
                also=chain_store.writer(
                    fresh,
                    [(b.number, b.hash, b.parent_hash) for b in batch.blocks],
                    rewind_above=batch.reorg.ancestor if batch.reorg is not None else None,
                    keep_from=None if tip is None else tip - chain.window,
                )
            )
        except Exception:
            # nothing of this batch is stored, but the model may have learned some of it:
            # rebuild it from storage so the re-scan does not teach it twice
            self.pipeline.reload()
            raise
        if batch.reorg is not None:
            orphaned = chain_store.count_logs_in([b.hash for b in batch.reorg.orphaned])
            self.reorgs += 1
            self.orphaned_logs += orphaned
            if self.pipeline.metrics:
                self.pipeline.metrics.chain_reorgs.labels(self.spec.id, source).inc()
                self.pipeline.metrics.chain_orphaned_logs.labels(self.spec.id, source).inc(orphaned)
            log.error(
                "chain.deep_reorg",
                feed=self.spec.id,
                source=source,
                ancestor=batch.reorg.ancestor,
                orphaned_blocks=[b.number for b in batch.reorg.orphaned],
                orphaned_logs=orphaned,
                confirmations=chain.spec.confirmations,
            )
        chain.advance(batch)

    async def _offer_prior(self, chain: ChainEventSource) -> None:
        """A policy learning from an agent's steps publishes its prior first (the loop's
        bootstrap, :meth:`FeedModel.prior_output`), observed at the source's ``from_block``:
        the same value, time and commitment at every member. Its time must be within the
        agent's ``maxPolicyAge`` when the agent first acts."""
        if self.pipeline.model.prior_output(0) is None:
            return
        at = await asyncio.to_thread(chain.start_time_ms)
        if at is None:
            return
        prior = self.pipeline.model.prior_output(at)
        if prior is not None:
            self.pipeline.last_output = prior
            self.pipeline.recent_outputs.append(prior)

    def latest_updates(self) -> list[FeedUpdate]:
        """The latest output as on-chain feed updates: one per published feed (one per arm
        of a policy feed, in :attr:`FeedSpec.outputs` order), none before the first."""
        last = self.pipeline.last_output
        if last is None:
            return []
        # built once per output: the rounds ask for every feed's latest several times a round
        cached = self._latest
        if cached is None or cached[0] is not last:
            cached = self._latest = (last, self._updates(last))
        return cached[1]

    def updates_at(self, observed_at: int) -> list[FeedUpdate]:
        """The updates of the newest recent output observed at that second (unix), if any.

        A follower asks for every leaf of a pull root whose value is not its own latest
        (10,000 a round at 10,000 feeds). The recent outputs are in time order (a model
        refuses an observation not after the last), so the walk back stops at the first
        one older than that second; and the updates of the output asked for are built once
        (the latest's by :meth:`latest_updates`, an older one's kept until another is
        asked for)."""
        low = observed_at * 1000
        for out in reversed(self.pipeline.recent_outputs):
            at = out.observed_at_ms
            if at < low:
                break
            if at < low + 1000:
                if out is self.pipeline.last_output:
                    return self.latest_updates()
                older = self._older
                if older is None or older[0] is not out:
                    older = self._older = (out, self._updates(out))
                return older[1]
        return []

    def _updates(self, out: StepOutput) -> list[FeedUpdate]:
        at = out.observed_at_ms // 1000
        values = [a.value for a in out.arms] if out.arms else [out.value]
        return [
            FeedUpdate(o.id_bytes32, value, at, out.commitment)
            for o, value in zip(self.spec.outputs, values, strict=True)
        ]

    def status(self) -> dict[str, Any]:
        out = self.pipeline.last_output
        spec = self.spec
        latest: dict[str, Any] | None = None
        if out is not None:
            latest = {
                "seq": out.seq,
                "value": str(out.value),
                "raw_value": out.raw_value,
                "observed_at_ms": out.observed_at_ms,
                "model_commitment": "0x" + out.commitment.hex(),
                "publish": out.publish,
            }
            if out.arms:
                latest["arms"] = [
                    {
                        "arm": a.arm,
                        "feed": o.id,
                        "feed_id_bytes32": "0x" + o.id_bytes32.hex(),
                        "value": str(a.value),
                        "raw_value": a.raw_value,
                        "publish": a.publish,
                    }
                    for o, a in zip(spec.outputs, out.arms, strict=True)
                ]
        return {
            "id": spec.id,
            "feed_id_bytes32": "0x" + spec.id_bytes32.hex(),
            "description": spec.description,
            "decimals": spec.decimals,
            "output_kind": spec.output_kind,
            **(
                {}
                if spec.output_kind != "policy"
                else {
                    "arms": [
                        {"arm": o.arm, "feed": o.id, "feed_id_bytes32": "0x" + o.id_bytes32.hex()}
                        for o in spec.outputs
                    ]
                }
            ),
            "latest": latest,
            "metrics": self.pipeline.model.metrics(),
            "drift": {
                "events": self.pipeline.model.state.drifts,
                "last_drift_seq": self.pipeline.model.state.last_drift_seq,
            },
            "last_error": self.last_poll_error or self.pipeline.last_error,
            # the stored rows by reason, and the repeats of a source's failure within a
            # minute of a stored one, counted but not stored (FeedPipeline.reject)
            "rejections": self.pipeline.store.rejection_counts(self.pipeline.storage_id),
            "failures_not_stored": self.pipeline.failures_not_stored,
            **({} if self.chain is None else {"chain": self.chain_status()}),
        }

    def chain_status(self) -> dict[str, Any]:
        assert self.chain is not None
        tip = self.chain.tip
        return {
            "scanned_to_block": None if tip is None else tip.number,
            "confirmations": self.chain.spec.confirmations,
            "deep_reorgs": self.reorgs,
            "orphaned_logs": self.orphaned_logs,
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


def restore_runners(runners: Sequence[FeedRunner]) -> None:
    """Restore many runners: their pipelines together (:func:`restore_together`, a few
    queries per few hundred feeds), then each one's source positions."""
    for runner in runners:
        runner._prime()
    restore_together([r.pipeline for r in runners])
    for runner in runners:
        runner._resume()


# The pipelines a group poll is ingesting into (poll_http_feeds): it stores their rows in
# one write when it ends, so the node's periodic flush leaves them alone (Node.flush). A
# flush in the middle of a poll of 10,000 feeds writes part of its rows and dirties most
# of every per-feed index's pages for them, then the poll's own write dirties them again.
_POLLING: set[FeedPipeline] = set()


def polling_pipelines() -> AbstractSet[FeedPipeline]:
    """The pipelines of the group polls in progress (their rows: the poll's own write).
    The live set, read-only: a copy of 10,000 pipelines for each periodic flush (five a
    second on a devnet) was ~1 % of a node carrying them."""
    return _POLLING


async def poll_http_feeds(runners: Sequence[FeedRunner]) -> None:
    """Poll HTTP feeds together: each distinct request once (every feed reading the same
    answer gets its own path's value from it), then every feed's rows stored in one
    transaction before the poll ends — what :meth:`FeedRunner.poll` does for one feed (a
    live reading cannot be read again), at the cost of one request per distinct URL and
    one write, not one of each per feed. (A round's observation still stores what it
    sends first, mid-poll or not: ``make_durable`` skips nothing.)"""
    pipelines = {r.pipeline for r in runners}
    _POLLING.update(pipelines)
    try:
        await _poll_http_feeds(runners)
    finally:
        _POLLING.difference_update(pipelines)


async def _poll_http_feeds(runners: Sequence[FeedRunner]) -> None:
    fetchers: dict[object, HttpSource] = {}
    for r in runners:
        for source in r.http:
            fetchers.setdefault(source.request, source)
    keys = list(fetchers)
    got = await asyncio.gather(*(fetchers[k].fetch_body() for k in keys), return_exceptions=True)
    answers = dict(zip(keys, got, strict=True))
    polled = []
    for i, r in enumerate(runners):
        if i and i % _INGEST_SLICE == 0:
            # let the rounds' messages in between slices: 10,000 feeds ingested in one go
            # hold the event loop for longer than a round's timeouts
            await asyncio.sleep(0)
        try:
            r.ingest_answers(answers)
            polled.append(r)
            r.last_poll_error = None
        except Exception as exc:  # a feed's failure must not stop the others
            r.last_poll_error = f"{type(exc).__name__}: {exc}"
            log.error("feed.poll_failed", feed=r.spec.id, error=r.last_poll_error)
    try:
        # off the event loop: rounds go on while 10,000 feeds' rows are written; on
        # failure every model is rewound to what is stored (a model must not keep what
        # was not stored), all together (one at a time: 40,000 statements at 10,000
        # feeds), before the error reaches here
        await flush_off_loop(r.pipeline for r in polled)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.error("feed.poll_failed", feeds=len(polled), error=error)
        for r in polled:
            r.last_poll_error = error


async def checkpoint_in_slices(
    pipelines: Sequence[FeedPipeline], size: int = CHECKPOINT_SLICE
) -> None:
    """Flush and checkpoint ``pipelines``, ``size`` in a transaction, yielding to the event
    loop between slices: 10,000 feeds checkpointed in one go (pickling every model) hold
    the loop for ~0.5 s, longer than a round's timeouts, once a checkpoint period on every
    node. A feed's checkpoint stands alone, so nothing needs them in one transaction. Each
    slice's write runs in the writer's thread (:func:`checkpoint_off_loop`)."""
    for at in range(0, len(pipelines), size):
        if at:
            await asyncio.sleep(0)
        await checkpoint_off_loop(pipelines[at : at + size])
