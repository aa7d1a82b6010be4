"""The retention window: the node's periodic deletion of observations, outputs and
rejections older than ``[database] retain_s``, keeping every row a restore reads
(oracle.storage.Store.prune).

A pass runs in a worker thread, one short transaction per few thousand rows, pausing
between them as long as each took: the feeds' writes and the rounds go on beside it (on
SQLite a writer waiting on the lock gets it in the pause). Passes never overlap, and a
failed one (a locked database, a lost connection) is logged and tried again the next
period: the deletions it committed stay, the node runs on.
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
        that deletes: a pass outliving its caller still blocks the next)."""
        if not self._running.acquire(blocking=False):
            log.warning("storage.prune_skipped", reason="the previous pass is still running")
            return None
        try:
            now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
            started = time.monotonic()
            pruned = self.store.prune(
                before_ms=now - self.retain_ms, output_ids=output_ids, progress=self._progress()
            )
            log.info(
                "storage.pruned",
                observations=pruned.observations,
                outputs=pruned.outputs,
                rejections=pruned.rejections,
                seconds=round(time.monotonic() - started, 3),
                retain_s=self.retain_ms / 1000,
            )
            return pruned
        finally:
            self._running.release()

    def _progress(self) -> Callable[[str, int], None]:
        """Counts each statement's rows (exact even if a later one fails), then pauses as
        long as the statement took since the last pause."""
        last = [time.monotonic()]

        def done(table: str, deleted: int) -> None:
            if deleted:
                self.pruned.labels(table).inc(deleted)
            time.sleep(min(time.monotonic() - last[0], MAX_PAUSE_S))
            last[0] = time.monotonic()

        return done
