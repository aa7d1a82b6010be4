"""The node's retention window (oracle.node.retention): after a pass, a restore gives
every feed exactly the state it gave before (model commitment, outputs, checkpoint,
dedup key), the deleted rows are counted, passes never overlap, a failed one is logged
and the next one runs; a node without ``retain_s`` deletes nothing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import OperationalError

from oracle.config import FeedSpec, load_node
from oracle.node.node import Node
from oracle.node.pipeline import FeedPipeline, restore_together
from oracle.node.retention import Retention
from oracle.registry.state import storage_id
from oracle.storage import CheckpointRow, ObservationRow, Pruned, Store
from oracle.storage.schema import ModelCheckpoint
from tests.api.test_node_api import node_config, wait_for
from tests.fixtures.db import Backend
from tests.harness.stored_runs import stored_entries
from tests.node.test_restore_together import (
    POLICY,
    SP500,
    feed_replay,
    feed_values,
    state,
    value_spec,
)

FAR_FUTURE_MS = 2**62  # every stored row is older than the window


def _rows(engine: Engine) -> int:
    return stored_entries(engine)


def _stored(engine: Engine, tmp_path: Path) -> list[tuple[FeedSpec, str | None]]:
    """Feeds with three checkpoints kept and rows after each (a value feed, a model, a
    policy and a registered version of it: outputs under the arms' and the version's
    ids), one whose newest checkpoints are of another spec (its restore starts at the
    OLDEST one kept) and one without a checkpoint."""
    store = Store(engine)
    plain, older_spec, unsaved = (value_spec(tmp_path, i) for i in range(3))
    for spec in (plain, older_spec):
        p = FeedPipeline(spec, store)
        for at in range(0, 40, 10):  # checkpoints at 10, 20, 30, 40: 20, 30, 40 are kept
            feed_values(p, at, at + 10)
            p.checkpoint()
        feed_values(p, 40, 45)
    with engine.begin() as conn:
        conn.execute(
            update(ModelCheckpoint)
            .where(ModelCheckpoint.feed_id == older_spec.id, ModelCheckpoint.seq > 20)
            .values(spec_digest=b"\x01" * 32)
        )
    feed_values(FeedPipeline(unsaved, store), 0, 12)
    made: list[tuple[FeedSpec, str | None]] = [(plain, None), (older_spec, None), (unsaved, None)]
    for spec, sid in ((SP500, None), (POLICY, None), (POLICY, storage_id(1, 2))):
        p = FeedPipeline(spec, store, storage_id=sid)
        for at in range(0, 120, 30):
            feed_replay(p, at, at + 30)
            p.checkpoint()
        feed_replay(p, 120, 140)
        made.append((spec, sid))
    return made


def _needed(store: Store, pipes: list[FeedPipeline]) -> dict[str, list[Any]]:
    """Every row a restore may read: each feed's observations and outputs (under each of
    its output ids) from its oldest checkpoint kept on (all of them without one)."""
    with store.engine.connect() as conn:
        oldest = dict(
            conn.execute(
                select(ModelCheckpoint.feed_id, func.min(ModelCheckpoint.seq)).group_by(
                    ModelCheckpoint.feed_id
                )
            ).all()
        )
    rows: dict[str, list[Any]] = {}
    for p in pipes:
        after = oldest.get(p.storage_id, 0) - 1
        rows[p.storage_id] = list(store.observations_after(p.storage_id, after))
        for oid in p.output_ids:
            rows[oid] = store.outputs(oid, after_seq=after, limit=10**9)
    return rows


def _restored(store: Store, feeds: list[tuple[FeedSpec, str | None]]) -> list[FeedPipeline]:
    pipes = [FeedPipeline(spec, store, storage_id=sid) for spec, sid in feeds]
    restore_together(pipes)
    return pipes


def test_a_restore_after_pruning_gives_what_it_gave_before(engine: Engine, tmp_path: Path) -> None:
    feeds = _stored(engine, tmp_path)
    store = Store(engine)
    before = [state(p) for p in _restored(store, feeds)]
    assert before[1][2] == 20  # the feed of another spec restores from its oldest checkpoint
    rows = _rows(engine)
    registry = CollectorRegistry()
    pipes = _restored(store, feeds)
    retention = Retention(store, 3600, registry, lambda: pipes)
    needed = _needed(store, pipes)
    assert len(needed) == 3 + 1 + 2 * (1 + len(POLICY.outputs))  # arms', versions' ids
    pruned = retention.prune({p.storage_id: p.output_ids for p in pipes}, now_ms=FAR_FUTURE_MS)
    assert pruned is not None and pruned.observations > 0 and pruned.outputs > 0
    assert _needed(store, pipes) == needed
    assert _rows(engine) == rows - pruned.observations - pruned.outputs
    assert [state(p) for p in _restored(store, feeds)] == before
    # every row of the feed without a checkpoint is kept; the others keep their newest,
    # from the oldest checkpoint kept (20) on, in whole runs: the one holding 20 (11-20,
    # a write of ten) stays whole
    unsaved = feeds[2][0].id
    assert [o.seq for o in store.observations_after(unsaved, 0)] == list(range(1, 13))
    assert [o.seq for o in store.observations_after(feeds[0][0].id, 0)] == list(range(11, 46))
    for table, n in (("observations", pruned.observations), ("outputs", pruned.outputs)):
        assert registry.get_sample_value("mira_pruned_rows_total", {"table": table}) == n
    # the state is still the same after a second pass (which finds nothing)
    again = retention.prune({p.storage_id: p.output_ids for p in pipes}, now_ms=FAR_FUTURE_MS)
    assert again is not None and again.total == 0


def test_passes_never_overlap(engine: Engine) -> None:
    store = Store(engine)
    entered, release = threading.Event(), threading.Event()

    def slow(**kwargs: Any) -> Pruned:
        entered.set()
        assert release.wait(10)
        return Pruned()

    store.prune = slow  # type: ignore[method-assign]
    retention = Retention(store, 3600, CollectorRegistry(), lambda: [])
    first = threading.Thread(target=retention.prune, args=({},))
    first.start()
    try:
        assert entered.wait(10)
        with structlog.testing.capture_logs() as logs:
            assert retention.prune({}) is None
        assert [e["event"] for e in logs] == ["storage.prune_skipped"]
    finally:
        release.set()
        first.join()
    assert retention.prune({}) == Pruned()  # the lock was given back


async def test_a_failed_pass_is_logged_and_the_next_period_retries(engine: Engine) -> None:
    store = Store(engine)
    real = store.prune
    calls = 0

    def locked_once(**kwargs: Any) -> Pruned:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OperationalError("DELETE", {}, Exception("database is locked"))
        return real(**kwargs)

    store.prune = locked_once  # type: ignore[method-assign]
    retention = Retention(store, 3600, CollectorRegistry(), lambda: [])
    with structlog.testing.capture_logs() as logs:
        await retention.run()  # does not raise
        await retention.run()
    events = [e["event"] for e in logs]
    assert events == ["storage.prune_failed", "storage.pruned"]
    assert "database is locked" in logs[0]["error"]
    assert logs[1]["observations"] == 0 and "seconds" in logs[1]


def test_retain_s_schedules_the_pass_and_its_absence_deletes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'n.sqlite'}"
    (tmp_path / "a").mkdir()
    plain = Node(*load_node(node_config(tmp_path / "a", url)))
    assert plain.retention is None and "prune" not in plain.scheduler.jobs
    (tmp_path / "b").mkdir()
    path = node_config(tmp_path / "b", url)
    path.write_text(path.read_text().replace("[database]\n", "[database]\nretain_s = 600\n"))
    node = Node(*load_node(path))
    assert node.retention is not None and node.retention.retain_ms == 600_000
    assert node.scheduler.jobs["prune"] == node.retention.run


@pytest.mark.timeout(120)
async def test_a_node_prunes_as_it_runs_and_restarts_where_it_was(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    """A whole node (the replayed S&P 500: every row years old) with a one-minute window
    pruned every second: rows go while it runs, and a restart restores its model exactly."""
    path = node_config(tmp_path, backend.node_url)
    text = path.read_text().replace("[database]\n", "[database]\nretain_s = 60\n")
    path.write_text(text + "prune_every_s = 1\n")
    node = Node(*load_node(path))
    runner = node.runners["SP500/forecast-1"]
    await node.start()
    try:
        await wait_for(lambda: runner.finished, "the replay to finish")
        pruned = node.registry.get_sample_value
        await wait_for(
            lambda: (pruned("mira_pruned_rows_total", {"table": "observations"}) or 0) > 0,
            "a pass to delete rows",
        )
    finally:
        await node.stop()
    commitment, last = runner.pipeline.model.commitment(), runner.pipeline.last_output
    store = Store(engine)
    assert store.count_observations(runner.pipeline.storage_id) < 1257
    (tmp_path / "again").mkdir()
    again = Node(*load_node(node_config(tmp_path / "again", backend.node_url)))
    restarted = again.runners["SP500/forecast-1"]
    restarted.restore()
    assert restarted.pipeline.model.seq == 1257
    assert restarted.pipeline.model.commitment() == commitment
    newest = store.latest_output(runner.spec.id)  # the node serves it: never pruned
    assert last is not None and newest is not None and newest.seq == last.seq


def test_stopping_ends_the_pass_in_flight_after_its_statement(engine: Engine) -> None:
    store = Store(engine)
    for s in range(1, 101):  # a write a seq, as a node polling makes them: runs of one
        store.write_batch([ObservationRow("f", s, "src", s, None, {})])
    store.save_checkpoint(CheckpointRow("f", 100, b"s" * 32, b"c" * 32, b"", 0))
    retention = Retention(store, 3600, CollectorRegistry(), lambda: [])
    real = store.prune

    def one_row_a_statement(**kwargs: Any) -> Pruned:
        progress = kwargs.pop("progress")

        def stop_after_first(table: str, n: int) -> None:
            retention.stop()  # as Node.stop does, from another thread
            progress(table, n)

        return real(**kwargs, rows=1, progress=stop_after_first)

    store.prune = one_row_a_statement  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        assert retention.prune({"f": ("f",)}, now_ms=FAR_FUTURE_MS) is None
        assert retention.prune({"f": ("f",)}, now_ms=FAR_FUTURE_MS) is None  # none after
    assert [e["event"] for e in logs] == ["storage.prune_stopped"]
    assert store.count_observations("f") == 99  # the one statement it ran is kept
