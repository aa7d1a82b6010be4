"""One feed's path from raw observations to stored outputs: validate → model →
quantized output, with writes batched and restore-on-restart.

Restart semantics: the newest checkpoint made under the same spec is loaded, and the
observations stored after it are run through the model again (their outputs are
already stored, and are checked to come out identical). The model then holds exactly
the state an uninterrupted run would hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import operator
import time
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from sqlalchemy import Connection, Engine

from oracle.config.feeds import FeedSpec
from oracle.models import FeedModel, ModelError, QuantizationError, Rejected, StepOutput
from oracle.sources.replay import RawObservation
from oracle.sources.validate import MAX_ABS, to_number
from oracle.storage import (
    CheckpointRow,
    ObservationRow,
    OutputRow,
    RejectionRow,
    Store,
)

log = structlog.get_logger(__name__)
_ABSENT = object()
RECENT_OUTPUTS = 32  # outputs kept in memory per feed (a few seconds of a fast feed)
FAILURE_ROW_EVERY_MS = 60_000  # a repeating source failure: one row a minute (reject)
_FAILURE_KEYS = 64
# rows built as tuple.__new__(Row, values): the same NamedTuple without the Python-level
# __new__ that a NamedTuple call runs (about half the cost of one row, twice per observation)
_row = tuple.__new__


class _StoredCounts:
    """``mira_observations`` and ``mira_outputs`` per feed: what the pipelines stored, kept
    as plain integers (``FeedMetrics.stored``) and read when scraped. A Prometheus
    ``Counter`` takes a lock per ``inc()``: a node carrying 10,000 feeds polled every
    second made 20,000 of them a second."""

    def __init__(self, stored: dict[str, list[int]]) -> None:
        self.stored = stored

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily]:
        return (
            CounterMetricFamily("mira_observations", "Accepted observations", labels=["feed"]),
            CounterMetricFamily("mira_outputs", "Model outputs", labels=["feed"]),
        )

    def describe(self) -> Iterator[CounterMetricFamily]:
        # the names, for a registry asked for some metrics by name (GET /metrics?name[]=…)
        yield from self._families()

    def collect(self) -> Iterator[CounterMetricFamily]:
        observations, outputs = self._families()
        for feed, (n_obs, n_out) in list(self.stored.items()):
            observations.add_metric([feed], n_obs)
            outputs.add_metric([feed], n_out)
        yield observations
        yield outputs


@dataclass
class FeedMetrics:
    registry: CollectorRegistry
    rejections: Counter = field(init=False)
    # feed id → [observations, outputs] stored (mira_observations, mira_outputs)
    stored: dict[str, list[int]] = field(init=False, default_factory=dict)
    drifts: Counter = field(init=False)
    chain_reorgs: Counter = field(init=False)
    chain_orphaned_logs: Counter = field(init=False)
    model_error: Gauge = field(init=False)
    baseline_error: Gauge = field(init=False)
    skill: Gauge = field(init=False)

    def __post_init__(self) -> None:
        # a forecast's rolling error beside its naive baseline's on the same targets: a
        # skill below 0 says the model no longer beats the naive rule
        self.model_error = Gauge(
            "mira_model_rolling_mae",
            "Rolling mean absolute error of the feed's forecasts",
            ["feed"],
            registry=self.registry,
        )
        self.baseline_error = Gauge(
            "mira_baseline_rolling_mae",
            "Rolling mean absolute error of the naive baseline on the same targets",
            ["feed", "baseline"],
            registry=self.registry,
        )
        self.skill = Gauge(
            "mira_model_skill",
            "1 - model MAE / baseline MAE over the rolling window (above 0: beats the baseline)",
            ["feed"],
            registry=self.registry,
        )
        self.registry.register(_StoredCounts(self.stored))
        self.rejections = Counter(
            "mira_rejected_observations",
            "Rejected observations by reason",
            ["feed", "reason"],
            registry=self.registry,
        )
        self.drifts = Counter(
            "mira_drift_events", "ADWIN drift detections", ["feed"], registry=self.registry
        )
        self.chain_reorgs = Counter(
            "mira_chain_deep_reorgs",
            "Reorgs deeper than a chain-events source's confirmation depth",
            ["feed", "source"],
            registry=self.registry,
        )
        self.chain_orphaned_logs = Counter(
            "mira_chain_orphaned_logs",
            "Ingested logs whose block a deep reorg orphaned",
            ["feed", "source"],
            registry=self.registry,
        )


_hypot = math.hypot


def _plain_floats(values: tuple[float, ...], floats: list[type]) -> bool:
    """Every value an exact ``float`` (``floats``: ``[float]`` as many times as values)
    and the lot within what the checked path accepts: each value's magnitude is at most
    their Euclidean norm, so a norm within ``MAX_ABS`` (nan and ±inf never are) means
    every value is finite and within it. Two C calls; a record this refuses (several
    values each near ``MAX_ABS``) takes the checked path, which decides the same."""
    return [*map(type, values)] == floats and _hypot(*values) <= MAX_ABS


class FeedPipeline:
    """``storage_id``: the key the feed's rows are stored under (default: the feed's id). A
    model version registered on-chain stores under its own (``m<model>v<version>``), so a
    new version starts from nothing and the old version's rows and checkpoint stay for
    audit, both publishing the same feed ids."""

    #: Bumped whenever any pipeline's latest output changes: a view of every feed's latest
    #: output keys its cache on it (oracle.node.network_epoch.NodeOutputs, asked for
    #: 10,000 feeds' outputs several times a round).
    outputs_changed: ClassVar[int] = 0
    #: The pipelines holding rows not stored yet (an insertion-ordered set): what the
    #: periodic flush and a round's make_durable store (:func:`flush_unstored`) without
    #: asking 10,000 clean feeds twice a second.
    _unstored: ClassVar[dict[FeedPipeline, None]] = {}

    def __init__(
        self,
        spec: FeedSpec,
        store: Store,
        metrics: FeedMetrics | None = None,
        *,
        storage_id: str | None = None,
    ) -> None:
        self.spec = spec
        self.store = store
        self.model = FeedModel(spec)
        self.metrics = metrics
        self._fields = list(spec.features.record_fields)
        fields = self._fields
        self._floats: list[type] = [float] * len(fields)
        # the fields' values as a tuple in one C call (itemgetter of one key gives a bare value)
        self._get_fields: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            operator.itemgetter(*fields) if len(fields) > 1 else lambda r: (r[fields[0]],)
        )
        # the string ids outputs are stored under: a policy feed stores one row per arm
        self.storage_id = storage_id or spec.id
        self._output_ids = [
            o.id if storage_id is None else f"{storage_id}:{o.id}" for o in spec.outputs
        ]
        self._feed_id = self.storage_id
        # [observations, outputs] stored, shared by the feed's pipelines (FeedMetrics.stored)
        self._stored_counts = metrics.stored.setdefault(spec.id, [0, 0]) if metrics else None
        # outputs made since the last write: the counts move once per write, by the rows
        # it stored
        self._outputs_pending = 0
        self._obs: list[ObservationRow] = []
        self._out: list[OutputRow] = []
        self._rej: list[RejectionRow] = []
        self._last_output: StepOutput | None = None
        # The last few outputs: a follower checks a proposed value against its own output
        # for the same observation time (oracle.reporting.protocol).
        self.recent_outputs: deque[StepOutput] = deque(maxlen=RECENT_OUTPUTS)
        self.last_error: str | None = None
        self.last_dedup_key: str | None = None
        self._checkpoint_seq = 0
        # (source, reason) → when a failure of that kind was last stored as a row (reject)
        self._failure_rows: dict[tuple[str, str], int] = {}
        self.failures_not_stored = 0  # since start: repeats counted but not stored

    # -- ingest ------------------------------------------------------------------------------

    def prime(self, obs: RawObservation) -> None:
        """Fill the model's lag features from ``obs`` (a row before a registered version's
        start point; see FeedModel.prime): nothing is learned, output or stored. A row the
        feed would reject is skipped, so the model then warms up on later rows instead."""
        try:
            record = {name: self._field(obs.raw, name) for name in self._fields}
            self.model.prime(record)
        except Rejected as exc:
            log.info("prime.skipped", feed=self.storage_id, reason=exc.reason)

    def ingest(self, obs: RawObservation) -> StepOutput | None:
        """Validate and consume one raw observation; buffer what must be stored. Returns
        its output (None if it was refused or gave none)."""
        return self.ingest_many((obs,))

    def ingest_many(self, observations: Iterable[RawObservation]) -> StepOutput | None:
        """:meth:`ingest` each observation in turn (a replay poll's batch: a thousand rows
        of one feed). Each is validated, consumed and buffered exactly as on its own;
        what only the newest matters for (``last_output``, ``last_dedup_key``, the set of
        pipelines holding rows) is updated once, when the batch ends or a model error
        stops it. Returns the last observation's output (None if it was refused or gave
        none).

        Two loops: the first validates each observation, begins its model step
        (:meth:`FeedModel.begin`: the model's own work, one observation after another)
        and buffers its row; the second finishes them all (:meth:`FeedModel.finish`) and
        buffers their outputs' rows.
        ``observations`` is read one at a time, never ahead: a model error on one ends
        the batch before the next is asked for, and whatever was begun before it is
        finished and buffered."""
        # the feed's lookups once a batch: about 1 µs an observation of a ~20 µs path
        fields, floats, get_fields = self._fields, self._floats, self._get_fields
        model = self.model
        begin, state = model.begin, model.state  # a model's state object lives as long as it
        feed_id, obs_append = self._feed_id, self._obs.append
        # the observations the model consumed, in order, and what begin() gave for each
        # (their rows are buffered as they are taken: each one is stored, output or not)
        taken: list[RawObservation] = []
        begun: list[Any] = []
        last_refused = False
        try:
            for obs in observations:
                raw = obs.raw
                last_refused = True
                try:
                    values = get_fields(raw)
                except KeyError:
                    values = None
                # fast path: every field a float (not an int, a bool or a string), none
                # nan or ±inf, all within ±MAX_ABS; anything else takes the checked path
                if values is None or not _plain_floats(values, floats):
                    try:
                        values = tuple([self._field(raw, name) for name in fields])
                    except Rejected as exc:
                        self.reject(obs.source, exc.reason, exc.detail, raw)
                        continue
                # as many values as fields by construction (zip's strict=True costs ~0.5
                # µs here). Exact finite floats under the spec's field names, in their
                # sorted order: stored as it is (the write encodes it with its run,
                # oracle.storage.runs, and JSON holds every such record), and never
                # changed after (the model copies what it keeps)
                record = dict(zip(fields, values))  # noqa: B905
                at = obs.observed_at_ms
                try:
                    b = begin(record, at)
                except Rejected as exc:
                    self.reject(obs.source, exc.reason, exc.detail, raw)
                    continue
                except QuantizationError as exc:
                    b = exc  # consumed, no output: finish() passes it on (see begin)
                last_refused = False
                obs_append(
                    _row(
                        ObservationRow, (feed_id, state.seq, obs.source, at, obs.dedup_key, record)
                    )
                )
                taken.append(obs)
                begun.append(b)
        finally:
            # the outputs finish() makes of what was consumed (all of it, or what came
            # before the error that stopped the batch)
            out: StepOutput | None = None
            if begun:
                out = self._buffer_outputs(taken, model.finish(begun))
                FeedPipeline._unstored[self] = None
                self.last_dedup_key = taken[-1].dedup_key
        return None if last_refused else out

    def _buffer_outputs(
        self, taken: list[RawObservation], finished: list[StepOutput | QuantizationError | None]
    ) -> StepOutput | None:
        """Buffer the rows of the outputs :meth:`FeedModel.finish` made of the observations
        ``taken`` (one outcome each, in order); the newest output, the drift events and
        the refused outputs are recorded. Returns the last observation's output (None:
        it gave none)."""
        feed_id, output_id, out_append = self._feed_id, self._output_ids[0], self._out.append
        made: list[StepOutput] = []
        for obs, out in zip(taken, finished, strict=True):
            if type(out) is not StepOutput:
                if out is not None:
                    # the model consumed the observation (its row is buffered), no output
                    self.last_error = str(out)
                    self.reject(obs.source, "unquantizable_output", str(out), obs.raw)
                continue
            made.append(out)
            if out.arms:  # a policy's or a values feed's output: a row for each of its feeds
                self._out.extend(
                    OutputRow(
                        arm_id,
                        out.seq,
                        out.observed_at_ms,
                        arm.value,
                        arm.raw_value,
                        out.commitment,
                        arm.publish,
                    )
                    for arm_id, arm in zip(self._output_ids, out.arms, strict=True)
                )
            else:
                out_append(
                    _row(
                        OutputRow,
                        (
                            output_id,
                            out.seq,
                            out.observed_at_ms,
                            out.value,
                            out.raw_value,
                            out.commitment,
                            out.publish,
                        ),
                    )
                )
            if out.drift:
                if self.metrics:
                    self.metrics.drifts.labels(feed_id).inc()
                log.info("drift", feed=feed_id, seq=out.seq)
        if made:
            self.last_output = made[-1]
            self.recent_outputs.extend(made)
            self._outputs_pending += len(made)
        last = finished[-1]
        return last if type(last) is StepOutput else None

    @staticmethod
    def _field(raw: dict[str, Any], name: str) -> float:
        value = raw.get(name, _ABSENT)
        # fast path for the common case: an ordinary finite float
        if type(value) is float and -MAX_ABS <= value <= MAX_ABS:
            return value
        if value is _ABSENT:
            raise Rejected("missing_field", f"field {name!r} is missing")
        return to_number(value, what=f"field {name!r}")

    def reject(self, source: str, reason: str, detail: str, raw: Any = None) -> None:
        """Refuse an observation (``raw``: what was refused) or record a source's failure
        (no ``raw``: a timeout, an error status, an answer without the value): counted
        every time (``mira_rejected_observations``), stored as a row unless it is a failure
        that repeats one already stored for the same source and reason less than
        ``FAILURE_ROW_EVERY_MS`` ago. A refused observation is always stored, each one
        its own datum; an upstream down for an hour under 10,000 feeds polled every second
        would otherwise store 72 million rows saying the same thing."""
        self.last_error = f"{reason}: {detail}"
        if self.metrics:
            self.metrics.rejections.labels(self.spec.id, reason).inc()
        now_ms = time.time_ns() // 1_000_000
        if raw is None:
            key = (source, reason)
            stored_at = self._failure_rows.get(key)
            if stored_at is not None and 0 <= now_ms - stored_at < FAILURE_ROW_EVERY_MS:
                self.failures_not_stored += 1
                return
            if len(self._failure_rows) >= _FAILURE_KEYS:  # bounded: a source's reasons are few
                self._failure_rows.clear()
            self._failure_rows[key] = now_ms
        text = None
        if raw is not None:
            try:
                text = json.dumps(raw, sort_keys=True, default=str)[:2000]
            except (TypeError, ValueError):
                text = repr(raw)[:2000]
        FeedPipeline._unstored[self] = None
        self._rej.append(RejectionRow(self.storage_id, source, now_ms, reason, detail, text))

    # -- persistence -------------------------------------------------------------------------

    @property
    def output_ids(self) -> tuple[str, ...]:
        """The ids its outputs are stored under (one per arm of a policy feed)."""
        return tuple(self._output_ids)

    @property
    def last_output(self) -> StepOutput | None:
        return self._last_output

    @last_output.setter
    def last_output(self, out: StepOutput | None) -> None:
        self._last_output = out
        FeedPipeline.outputs_changed += 1

    @property
    def pending(self) -> int:
        return len(self._obs) + len(self._rej)

    def flush(self, also: Callable[[Connection], None] | None = None) -> None:
        """Store the buffered observations, outputs and rejections in one transaction;
        ``also`` (a source's bookkeeping) joins that transaction."""
        if not self.pending and also is None:
            return
        if _IN_FLIGHT and self in _IN_FLIGHT[0].pipelines:
            settle_off_loop_write()  # a group poll's write of this feed lands first
        self.store.write_batch(self._obs, self._out, self._rej, also=also)
        self._stored()

    def _stored(self) -> None:
        """The buffered rows were written: count them, clear the buffers, export the
        skill gauges."""
        self._count_stored(*self._empty_buffers())

    def _empty_buffers(self) -> tuple[int, int]:
        """Empty the row buffers (their rows stored, or taken by a write); return the
        observations and outputs they held. Emptied in place, not replaced: three new
        lists per feed per write are 30,000 objects the cyclic GC tracks after each poll
        of 10,000 feeds."""
        held = len(self._obs), self._outputs_pending
        self._obs.clear()
        self._out.clear()
        self._rej.clear()
        FeedPipeline._unstored.pop(self, None)
        self._outputs_pending = 0
        return held

    def _count_stored(self, observations: int, outputs: int) -> None:
        """``observations`` rows and ``outputs`` outputs of this feed were stored."""
        counts = self._stored_counts
        if counts is not None:
            counts[0] += observations  # one row per accepted observation
            counts[1] += outputs
        self._export_skill()

    def _export_skill(self) -> None:
        """Set the error and skill gauges (once per write, off the per-observation path).
        A feed without a model has neither."""
        if self.metrics is None or self.spec.model is None:
            return
        m = self.model.metrics()
        if m["mae"] is not None:
            self.metrics.model_error.labels(self._feed_id).set(m["mae"])
        if m.get("baseline_mae") is not None:
            self.metrics.baseline_error.labels(self._feed_id, m["baseline"]).set(m["baseline_mae"])
        if m["skill"] is not None:
            self.metrics.skill.labels(self._feed_id).set(m["skill"])

    def checkpoint(self) -> None:
        """Flush, then checkpoint the model unless nothing changed since the last one."""
        self.flush()
        row = self.checkpoint_row()
        if row is not None:
            self.store.save_checkpoint(row)
            self._checkpoint_seq = row.seq

    def checkpoint_row(self) -> CheckpointRow | None:
        """The model's checkpoint to store (its rows flushed first: the caller's job), or
        None if nothing changed since the last one stored."""
        if self.model.seq == self._checkpoint_seq:
            return None
        return CheckpointRow(
            self.storage_id,
            self.model.seq,
            self.spec.digest,
            self.model.commitment(),
            self.model.checkpoint(),
            time.time_ns() // 1_000_000,
        )

    def reload(self) -> int:
        """Drop what is buffered and rebuild the model from storage alone: after a failed
        write the model is ahead of what is stored, and must not stay so.
        (:func:`reload_together` of this one pipeline.)"""
        return reload_together([self])[0]

    def _reset(self) -> None:
        """Back to a freshly built pipeline: no buffered rows, an empty model."""
        self._obs, self._out, self._rej = [], [], []
        self._failure_rows.clear()  # the dropped rows may have been the ones stored
        FeedPipeline._unstored.pop(self, None)
        self._outputs_pending = 0
        self.model = FeedModel(self.spec)
        self._checkpoint_seq = 0
        self.last_output = None
        self.recent_outputs.clear()

    def restore(self) -> int:
        """Rebuild the model from storage; return the number of observations re-run.
        (:func:`restore_together` of this one pipeline.)"""
        return restore_together([self])[0]

    def _replay(self, row: ObservationRow, expected: dict[tuple[str, int], OutputRow]) -> None:
        """Run a stored observation through the model again; its stored outputs (in
        ``expected``) must come out identical."""
        try:
            out = self.model.step(row.record, row.observed_at_ms)
        except QuantizationError:
            out = None
        if out is not None:
            values = [a.value for a in out.arms] if out.arms else [out.value]
            for output_id, value in zip(self._output_ids, values, strict=True):
                stored = expected.get((output_id, row.seq))
                if stored is not None and (stored.value, stored.commitment) != (
                    value,
                    out.commitment,
                ):
                    raise ModelError(
                        f"feed {output_id}: replaying observation {row.seq} gave "
                        f"{value}/{out.commitment.hex()}, storage has "
                        f"{stored.value}/{stored.commitment.hex()}"
                    )
            self.last_output = out
            self.recent_outputs.append(out)
        self.last_dedup_key = row.dedup_key


RESTORE_CHUNK = 500  # feeds restored together: their stored rows after the checkpoints in memory


def restore_together(pipelines: Sequence[FeedPipeline]) -> list[int]:
    """Rebuild the models of freshly built (or reset) pipelines from storage; return the
    number of observations each re-ran, in order.

    Each pipeline loads the newest checkpoint made under its spec, then re-runs the
    observations stored after it, checking that they give the outputs stored for them
    (:class:`ModelError` if not). The checkpoints, the outputs after them, the observations
    after them and the last observations of ``RESTORE_CHUNK`` feeds are read together, a
    few statements each: a node carrying 10,000 feeds starts with about a hundred queries,
    not four a feed. A checkpoint that does not load fails as its own restore would, the
    pipelines restored before it staying restored."""
    ids = [p.storage_id for p in pipelines]
    if len(set(ids)) != len(ids):
        raise ValueError("restore_together: each storage id once")
    replayed: dict[str, int] = {}
    by_store: dict[int, list[FeedPipeline]] = {}
    for p in pipelines:
        by_store.setdefault(id(p.store), []).append(p)
    for group in by_store.values():
        for at in range(0, len(group), RESTORE_CHUNK):
            replayed.update(_restore_chunk(group[0].store, group[at : at + RESTORE_CHUNK]))
    return [replayed[i] for i in ids]


def _restore_chunk(store: Store, chunk: Sequence[FeedPipeline]) -> dict[str, int]:
    by_id = {p.storage_id: p for p in chunk}
    checkpoints = store.latest_checkpoints({p.storage_id: p.spec.digest for p in chunk})
    after: dict[str, int] = {}
    for p in chunk:
        ckpt = checkpoints.get(p.storage_id)
        after[p.storage_id] = 0
        if ckpt is not None:
            p.model.restore(ckpt.state)
            after[p.storage_id] = p._checkpoint_seq = ckpt.seq
    expected = {
        (o.feed_id, o.seq): o
        for o in store.outputs_after_many(
            {output_id: after[p.storage_id] for p in chunk for output_id in p._output_ids}
        )
    }
    replayed = dict.fromkeys(by_id, 0)
    for row in store.observations_after_many(after):
        by_id[row.feed_id]._replay(row, expected)
        replayed[row.feed_id] += 1
    # a feed that re-ran observations holds its newest one's key; the others ask
    quiet = [feed_id for feed_id, n in replayed.items() if n == 0]
    keys = store.last_dedup_keys(quiet) if quiet else {}
    for feed_id in quiet:
        by_id[feed_id].last_dedup_key = keys.get(feed_id)
    for feed_id, n in replayed.items():
        log.info("restored", feed=feed_id, checkpoint_seq=after[feed_id], replayed=n)
    return replayed


def reload_together(pipelines: Sequence[FeedPipeline]) -> list[int]:
    """:meth:`FeedPipeline.reload` of many pipelines (a group poll's, after its write
    failed): every buffer dropped and model emptied, then all rebuilt together
    (:func:`restore_together`: a few statements per few hundred feeds, not four a feed).
    Returns the observations each re-ran, in order."""
    for p in pipelines:
        p._reset()
    return restore_together(pipelines)


def flush_together(pipelines: Iterable[FeedPipeline]) -> None:
    """Store the buffered rows of many pipelines in one transaction per store (all or
    nothing, as :meth:`FeedPipeline.flush`): a node carrying 10,000 feeds makes its
    observations durable with one write a round, not 10,000. On failure nothing of that
    store's pipelines is stored and their buffers are kept. If a group poll's write in
    flight (:func:`flush_off_loop`) holds rows of any of them, it ends first."""
    pipelines = list(pipelines)
    groups = _by_store(pipelines)
    waits = bool(_IN_FLIGHT) and any(p in _IN_FLIGHT[0].pipelines for g in groups for p in g)
    if waits and settle_off_loop_write() is not None:
        groups = _by_store(pipelines)  # the failed write's feeds were rewound: emptied
    for group in groups:
        rows = _Taken(group, clear=False)
        group[0].store.write_batch(rows.observations, rows.outputs, rows.rejections)
        for p in group:
            p._stored()


def _by_store(pipelines: Iterable[FeedPipeline]) -> list[list[FeedPipeline]]:
    """The pipelines holding rows (``p.pending`` without a call: a node asks 10,000 feeds
    a flush), grouped by the store they write to."""
    by_store: dict[int, list[FeedPipeline]] = {}
    for p in pipelines:
        if p._obs or p._rej:
            by_store.setdefault(id(p.store), []).append(p)
    return list(by_store.values())


class _Taken:
    """The buffered rows of a group of pipelines, as one write's lists. With ``clear``
    the buffers are emptied in place as they are taken (a write off the event loop: the
    pipelines go on buffering while it runs), and what each pipeline gave is remembered
    for :meth:`FeedPipeline._count_stored` once the write has landed."""

    __slots__ = ("given", "observations", "outputs", "rejections")

    def __init__(self, group: Sequence[FeedPipeline], *, clear: bool) -> None:
        self.observations: list[ObservationRow] = []
        self.outputs: list[OutputRow] = []
        self.rejections: list[RejectionRow] = []
        self.given: list[tuple[FeedPipeline, int, int]] = []
        for p in group:
            self.observations += p._obs
            self.outputs += p._out
            self.rejections += p._rej
            if clear:
                self.given.append((p, *p._empty_buffers()))


# -- a group poll's write off the event loop -------------------------------------------------
#
# A node polling 10,000 feeds writes 20,000 rows a poll; in SQLite that takes 0.1-0.4 s (more
# as the tables grow: each row goes into every per-feed index at its own page). Written on
# the event loop, every round message arriving meanwhile waits, and rounds whose phases
# time out in that window fail. So the group poll's write runs in one worker thread (the
# sqlite3 and psycopg drivers release the GIL while the database works) and the loop goes
# on serving rounds. Rules keep what a crash or a failed write can do the same as for a
# write on the loop: at most one such write is in flight; a write of any of its pipelines
# waits for it to end first (settle_off_loop_write), so a pipeline's rows reach storage in
# order and nothing newer of a pipeline is stored after an older write of it failed (its
# model is rewound first); a checkpoint waits for it (a model's state is saved only with
# every row before it stored); and so does a round before it sends outputs
# (make_durable: never send what a crash could take back). The node's periodic flush
# writes other pipelines' rows meanwhile, without waiting.

_WRITER: ThreadPoolExecutor | None = None


def _writer() -> ThreadPoolExecutor:
    """The one thread a node's writes off the event loop run in, in the order given."""
    global _WRITER
    if _WRITER is None:
        _WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mira-store-write")
    return _WRITER


@dataclass
class _InFlight:
    future: Future[None]
    rows: _Taken
    pipelines: frozenset[FeedPipeline]
    error: BaseException | None = None
    settled: bool = False


_IN_FLIGHT: list[_InFlight] = []  # the write in flight, if any: at most one


def settle_off_loop_write() -> BaseException | None:
    """Wait for the group poll's write in flight, if any, and account for it: on success
    count its rows; on failure rewind each of its pipelines to what is stored (their
    models must not stay ahead of storage). Returns that write's error, if it failed.
    Blocks the caller for the rest of the write (what a write on the loop did always)."""
    if not _IN_FLIGHT:
        return None
    flight = _IN_FLIGHT.pop()
    _settle(flight)
    return flight.error


def _settle(flight: _InFlight) -> None:
    if flight.settled:
        return
    flight.settled = True
    flight.error = flight.future.exception()  # waits for it to end
    if flight.error is None:
        for p, observations, outputs in flight.rows.given:
            p._count_stored(observations, outputs)
    else:
        reload_together([p for p, _, _ in flight.rows.given])


async def wait_off_loop_write() -> None:
    """:func:`settle_off_loop_write` without holding the event loop: awaits the write in
    flight (if any) to end, then accounts for it. Its failure is its writer's to report."""
    while _IN_FLIGHT:
        flight = _IN_FLIGHT[0]
        with contextlib.suppress(Exception):
            await asyncio.shield(asyncio.wrap_future(flight.future))
        # this one has ended: accounted for, waiting for nothing (another coroutine that
        # was waiting too may have started the next write meanwhile: that one is awaited)
        _forget(flight)
        _settle(flight)


def _forget(flight: _InFlight) -> None:
    if flight in _IN_FLIGHT:
        _IN_FLIGHT.remove(flight)


async def flush_off_loop(pipelines: Iterable[FeedPipeline]) -> None:
    """:func:`flush_together`, the write itself in a worker thread while the event loop
    runs on (see above). Raises the write's error once its pipelines are rewound. The
    write is shielded from cancellation: once taken from the buffers, rows are stored or
    their pipelines rewound, whatever happens to the caller."""
    await wait_off_loop_write()  # another group poll's
    for group in _by_store(pipelines):
        rows = _Taken(group, clear=True)
        store = group[0].store
        future = _writer().submit(
            store.write_batch, rows.observations, rows.outputs, rows.rejections
        )
        flight = _InFlight(future, rows, frozenset(group))
        _IN_FLIGHT.append(flight)
        with contextlib.suppress(Exception):
            await asyncio.shield(asyncio.wrap_future(future))
        _forget(flight)
        _settle(flight)  # unless a write on the loop settled it meanwhile
        if flight.error is not None:
            raise flight.error
        # then, in the same thread (before the next poll's write, after nobody waits on
        # this one), fold the one-entry runs such polls leave (Store.fold_after_poll)
        _writer().submit(_fold, store)


def _fold(store: Store) -> None:
    """Fold the runs of the feeds that wrote enough of them since their last fold. An
    optimisation of the layout only: a failure changes nothing stored (its transaction
    rolls back) and is logged; the next poll's fold tries again."""
    try:
        removed = store.fold_after_poll()
    except Exception as exc:  # the rows are stored whatever happens here
        log.warning("storage.fold_failed", error=f"{type(exc).__name__}: {exc}")
        return
    if removed:
        log.debug("storage.folded", runs_removed=removed)


def flush_unstored(engine: Engine, *, skip: Container[FeedPipeline] = frozenset()) -> None:
    """:func:`flush_together` of the pipelines storing into ``engine``'s database that
    hold rows not stored yet, found without asking the others (a node carrying 10,000
    feeds flushes twice a second and before each observation it sends), but those in
    ``skip`` (a periodic flush leaves a group poll's pipelines to the poll's own write)."""
    flush_together(
        [p for p in FeedPipeline._unstored if p.store.engine is engine and p not in skip]
    )


def checkpoint_together(pipelines: Sequence[FeedPipeline]) -> None:
    """Flush, then checkpoint every changed model, each store in one transaction (once a
    group poll's write in flight has landed: a checkpoint is a model's state after rows
    that must all be stored)."""
    settle_off_loop_write()
    _drain_writer()  # a periodic checkpoint's write still in the writer's thread lands first
    flush_together(pipelines)
    for store, made in _checkpoint_rows(pipelines):
        _save_checkpoints(store, made)


async def checkpoint_off_loop(pipelines: Sequence[FeedPipeline]) -> None:
    """:func:`checkpoint_together` for a running node: the group poll's write in flight is
    awaited, not waited for, and the checkpoints are written in the writer's thread
    (after what it was given before: a poll's write, a fold), so the event loop serves
    rounds meanwhile. On the loop, a slice's checkpoint of 500 feeds waited for the poll's
    write in flight and then for SQLite's write lock held by the writer's fold: up to a few
    hundred ms a slice, twenty slices a minute at 10,000 feeds. A failed save raises (its
    pipelines stay unmarked: the next checkpoint saves them); the poll's write it awaits
    reports its own failure (and rewinds its feeds first)."""
    await wait_off_loop_write()
    # from here to the models' pickles nothing yields: once flush_together returns, every
    # row up to each model's state is stored, so each checkpoint is of a stored state (a
    # later write's failure rewinds the models to what is stored, never below it)
    flush_together(pipelines)
    for store, made in _checkpoint_rows(pipelines):
        # saved and marked in the writer's thread: if this is cancelled meanwhile (a node
        # stopping), what the write saved is still marked saved, and the stop's own
        # checkpoint (after draining the writer) does not save it again
        job = _writer().submit(_save_checkpoints, store, made)
        await asyncio.shield(asyncio.wrap_future(job))


_Made = list[tuple["FeedPipeline", CheckpointRow]]


def _checkpoint_rows(pipelines: Sequence[FeedPipeline]) -> list[tuple[Store, _Made]]:
    """The checkpoint of each pipeline whose model changed since its last, by store."""
    by_store: dict[int, tuple[Store, _Made]] = {}
    for p in pipelines:
        row = p.checkpoint_row()
        if row is not None:
            by_store.setdefault(id(p.store), (p.store, []))[1].append((p, row))
    return list(by_store.values())


def _save_checkpoints(store: Store, made: _Made) -> None:
    """Save ``made`` in one transaction, then mark each pipeline's checkpoint saved."""
    store.save_checkpoints([row for _, row in made])
    for p, row in made:
        p._checkpoint_seq = row.seq


def _drain_writer() -> None:
    """Wait (blocking) until the writer's thread has done everything given to it so far."""
    if _WRITER is not None:
        _WRITER.submit(lambda: None).result()
