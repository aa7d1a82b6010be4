"""The retention window: the node's periodic deletion of observations, outputs and
rejections older than ``[database] retain_s``, keeping every row a restore reads
(oracle.storage.Store.prune).

A pass runs in a worker thread, one short transaction per few thousand rows, pausing
between them as long as each took: the feeds' writes and the rounds go on beside it (on
SQLite a writer waiting on the lock gets it in the pause). Passes never overlap, and a
failed one (a locked database, a lost connection) is logged and tried again the next
period: the deletions it committed stay, the node runs on. A node stopping ends the pass
in flight after its current statement (a first pass over a large database can take
minutes, and the process waits for its worker thread before it exits).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable

import structlog
from prometheus_client import CollectorRegistry, Counter

from oracle.node.pipeline import FeedPipeline
from oracle.storage import Pruned, Store

log = structlog.get_logger(__name__)
MAX_PAUSE_S = 1.0  # between two statements of a pass, however long the last one took


class _Stopped(Exception):
    """The node is stopping: the pass ends after the statement it just committed."""


class Retention:
    """Deletes what is older than ``retain_s`` from ``store``, for the pipelines that
    ``pipelines`` returns (the live set: registered models come and go); the rows of any
    other storage id are kept."""

    def __init__(
        self,
        store: Store,
        retain_s: float,
        registry: CollectorRegistry,
        pipelines: Callable[[], Iterable[FeedPipeline]],
    ) -> None:
        self.store = store
        self.retain_ms = int(retain_s * 1000)
        self._pipelines = pipelines
        self._running = threading.Lock()
        self._stopping = threading.Event()
        self.pruned = Counter(
            "mira_pruned_rows",
            "Rows deleted as older than the retention window ([database] retain_s)",
            ["table"],
            registry=registry,
        )

    async def run(self) -> None:
        """One pass (the scheduler's job): never raises, a failure waits for the next."""
        output_ids = {p.storage_id: p.output_ids for p in self._pipelines()}
        try:
            await asyncio.to_thread(self.prune, output_ids)
        except Exception as exc:
            log.error("storage.prune_failed", error=f"{type(exc).__name__}: {exc}")

    def prune(
        self, output_ids: dict[str, tuple[str, ...]], *, now_ms: int | None = None
    ) -> Pruned | None:
        """One pass, or None if one is running already (a pass takes the lock in the thread
        that deletes: a pass outliving its caller still blocks the next) or the node is
        stopping."""
        if self._stopping.is_set():
            return None
        if not self._running.acquire(blocking=False):
            log.warning("storage.prune_skipped", reason="the previous pass is still running")
            return None
        try:
            return self._pass(output_ids, time.time_ns() // 1_000_000 if now_ms is None else now_ms)
        finally:
            self._running.release()

    def _pass(self, output_ids: dict[str, tuple[str, ...]], now_ms: int) -> Pruned | None:
        started = time.monotonic()
        try:
            pruned = self.store.prune(
                before_ms=now_ms - self.retain_ms, output_ids=output_ids, progress=self._progress()
            )
        except _Stopped:
            log.info("storage.prune_stopped", seconds=round(time.monotonic() - started, 3))
            return None
        log.info(
            "storage.pruned",
            observations=pruned.observations,
            outputs=pruned.outputs,
            rejections=pruned.rejections,
            seconds=round(time.monotonic() - started, 3),
            retain_s=self.retain_ms / 1000,
        )
        return pruned

    def stop(self) -> None:
        """End the pass in flight after its current statement, and run no other."""
        self._stopping.set()

    def _progress(self) -> Callable[[str, int], None]:
        """Counts each statement's rows (exact even if a later one fails), then pauses as
        long as the statement took since the last pause, or ends the pass if the node is
        stopping."""
        last = [time.monotonic()]

        def done(table: str, deleted: int) -> None:
            if deleted:
                self.pruned.labels(table).inc(deleted)
            if self._stopping.wait(min(time.monotonic() - last[0], MAX_PAUSE_S)):
                raise _Stopped
            last[0] = time.monotonic()

        return done
