"""A running node makes full GC passes rare (each one holds the event loop) and times every
pass: ``mira_gc_pause_seconds`` by generation."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine

from oracle.config import load_node
from oracle.node.gc_watch import FULL_PASS_AFTER, GcWatch
from oracle.node.node import Node
from tests.api.test_node_api import node_config
from tests.fixtures.db import Backend


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def _passes(registry: CollectorRegistry, generation: int) -> float:
    value = registry.get_sample_value(
        "mira_gc_pause_seconds_count", {"generation": str(generation)}
    )
    assert value is not None
    return value


def test_start_makes_full_passes_rare_and_stop_puts_the_thresholds_back(
    thresholds: tuple[int, int, int],
) -> None:
    watch = GcWatch(CollectorRegistry())
    watch.start()
    watch.start()  # twice: the saved thresholds stay the original ones
    first, second, third = gc.get_threshold()
    assert (first, second) == thresholds[:2] and third == max(thresholds[2], FULL_PASS_AFTER)
    watch.stop()
    assert gc.get_threshold() == thresholds
    watch.stop()  # twice: nothing to undo
    assert gc.get_threshold() == thresholds


def test_two_in_one_process_put_the_thresholds_back_when_the_last_stops(
    thresholds: tuple[int, int, int],
) -> None:
    first, second = GcWatch(CollectorRegistry()), GcWatch(CollectorRegistry())
    first.start()
    second.start()
    first.stop()  # stopped in either order: the other still runs
    assert gc.get_threshold()[2] == max(thresholds[2], FULL_PASS_AFTER)
    second.stop()
    assert gc.get_threshold() == thresholds
    second.start()
    first.start()
    second.stop()
    first.stop()
    assert gc.get_threshold() == thresholds


def test_every_pass_is_timed_while_started(thresholds: tuple[int, int, int]) -> None:
    registry = CollectorRegistry()
    watch = GcWatch(registry)
    assert _passes(registry, 2) == 0
    watch.start()
    try:
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect(2) >= 1  # a full pass still frees a cycle
        gc.collect(0)
    finally:
        watch.stop()
    assert _passes(registry, 2) == 1 and _passes(registry, 0) >= 1
    total = registry.get_sample_value("mira_gc_pause_seconds_sum", {"generation": "2"})
    assert total is not None and total > 0
    inf = registry.get_sample_value(
        "mira_gc_pause_seconds_bucket", {"generation": "2", "le": "+Inf"}
    )
    assert inf == 1
    gc.collect(2)  # stopped: not counted
    assert _passes(registry, 2) == 1
    text = generate_latest(registry).decode()
    assert 'mira_gc_pause_seconds_bucket{generation="2",le="0.001"}' in text


async def test_a_node_sets_them_while_it_runs(
    backend: Backend, engine: Engine, tmp_path: Path, thresholds: tuple[int, int, int]
) -> None:
    node = Node(*load_node(node_config(tmp_path, backend.node_url)))
    await node.start()
    try:
        assert gc.get_threshold()[2] == max(thresholds[2], FULL_PASS_AFTER)
        assert b"mira_gc_pause_seconds_count" in generate_latest(node.registry)
    finally:
        await node.stop()
    assert gc.get_threshold() == thresholds


async def test_a_node_whose_stop_is_cancelled_still_puts_them_back(
    backend: Backend, engine: Engine, tmp_path: Path, thresholds: tuple[int, int, int]
) -> None:
    """A second Ctrl-C, say, cancels the stop while a service is still stopping: the
    process's GC thresholds are the node's to put back all the same."""
    node = Node(*load_node(node_config(tmp_path, backend.node_url)))
    await node.start()
    api_stop = node.api.stop
    stopping = asyncio.Event()

    async def slow_stop() -> None:
        stopping.set()
        await asyncio.sleep(30)

    node.api.stop = slow_stop  # type: ignore[method-assign]
    stop = asyncio.create_task(node.stop())
    await asyncio.wait_for(stopping.wait(), 10)
    stop.cancel()
    await asyncio.gather(stop, return_exceptions=True)
    assert gc.get_threshold() == thresholds
    await api_stop()
    await node.stop()  # the services the cancelled stop left running
