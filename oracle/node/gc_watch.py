"""The cyclic garbage collector in a running node: its full passes made rare, and every pass
timed (``mira_gc_pause_seconds``, by generation).

A node carrying 10,000 feeds keeps a few hundred thousand objects that outlive the young
generations only to be replaced a few polls later (each feed's recent outputs, the rounds'
per-feed caches). With CPython's default thresholds (700, 10, 10) a full pass runs whenever
a quarter more objects have reached the oldest generation than the last full pass left
there: every 3-5 s in ``mira bench pull --feeds 10000 --poll 2``, each one holding the
event loop for 100-700 ms (a round's phases time out meanwhile) and freeing ~50 objects.
The start-up heap is frozen out of every pass already (:class:`oracle.node.node.FeedsService`).

While the node runs, a full pass is considered after ``FULL_PASS_AFTER`` passes of the
second generation instead of 10: about every ten minutes at that load. Cyclic garbage
that dies young is still collected within seconds by the young generations; what
reaches the oldest one waits for the next full pass.

The pauses are counted with plain numbers in the collector's callback and turned into a
histogram when scraped: a callback runs wherever an allocation triggers a pass, possibly
inside code that holds a metric's lock, so it takes no lock itself.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily

METRIC = "mira_gc_pause_seconds"
FULL_PASS_AFTER = 1000  # second-generation passes before a full one is considered (CPython: 10)
# pause buckets (s): a young pass takes well under 10 ms; what matters is the long tail
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


# The watches started in this process (several nodes run in one process in tests): the
# thresholds are set by the first to start and put back by the last to stop.
_STARTED: list[GcWatch] = []
_SAVED: list[tuple[int, int, int]] = []


class GcWatch:
    """``start`` sets the thresholds and times every pass; ``stop`` puts both back."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # per generation: [count of pauses in each bucket (the last: above every bound), sum]
        self._counts = [[0] * (len(BUCKETS) + 1) for _ in range(3)]
        self._sums = [0.0, 0.0, 0.0]
        self._began = 0.0
        registry.register(self)

    def start(self) -> None:
        if self in _STARTED:
            return
        if not _STARTED:
            first, second, third = gc.get_threshold()
            _SAVED[:] = [(first, second, third)]
            gc.set_threshold(first, second, max(third, FULL_PASS_AFTER))
        _STARTED.append(self)
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self not in _STARTED:
            return
        _STARTED.remove(self)
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        if not _STARTED:
            gc.set_threshold(*_SAVED.pop())

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        pause = time.perf_counter() - self._began
        generation = info["generation"]
        self._sums[generation] += pause
        counts = self._counts[generation]
        for i, bound in enumerate(BUCKETS):
            if pause <= bound:
                counts[i] += 1
                return
        counts[-1] += 1

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(METRIC, "Cyclic GC passes by generation", labels=["generation"])

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            METRIC,
            "Cyclic GC passes by generation (2: a full pass, the event loop held throughout)",
            labels=["generation"],
        )
        for generation in range(3):
            counts = list(self._counts[generation])  # a pass may land while this reads
            cumulative, buckets = 0, []
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                cumulative += n
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            family.add_metric([str(generation)], buckets, self._sums[generation])
        yield family
