"""HTTP feeds polled together (oracle.node.feeds.poll_http_feeds): one request per distinct
URL whatever the number of feeds reading it, each feed its own path's value, one write; a
feed whose path is missing is rejected alone; a failed write stores nothing and leaves no
model ahead of storage. And the rounds' per-feed look-ups (oracle.node.network_epoch)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from sqlalchemy import Engine, event

from oracle.config import load_feed_spec
from oracle.devnet.localnet import FEED_SPEC
from oracle.node.feeds import FeedRunner, checkpoint_in_slices, poll_http_feeds
from oracle.node.network_epoch import NodeOutputs
from oracle.node.pipeline import FeedPipeline, checkpoint_together, flush_unstored
from oracle.sources.replay import RawObservation
from oracle.storage import Store
from tests.harness.http_server import local_server


class _Server:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.prices: dict[str, Any] = {"a": 1.5, "b": 2.5, "c": 3.5}

    async def _prices(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        return web.json_response(self.prices)

    async def _other(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        return web.json_response({"price": 9.25})


@pytest.fixture
async def server() -> AsyncIterator[tuple[_Server, str]]:
    s = _Server()
    async with local_server({"/prices": s._prices, "/other": s._other}) as base:
        yield s, base


def _runner(tmp_path: Path, store: Store, name: str, url: str, path: str) -> FeedRunner:
    spec = FEED_SPEC.format(
        feed=name, decimals=8, url=url, poll=1.0, deviation_bps=10, tolerance_bps=100
    ).replace('path = "price"', f'path = "{path}"')
    file = tmp_path / f"{name.replace('/', '_')}.toml"
    file.write_text(spec)
    runner = FeedRunner(load_feed_spec(file), store, None)  # type: ignore[arg-type]
    runner.restore()
    return runner


def _tickers(tmp_path: Path, store: Store, base: str, keys: str) -> list[FeedRunner]:
    """A feed per key of the /prices answer."""
    return [_runner(tmp_path, store, f"{k.upper()}/USD", f"{base}/prices", k) for k in keys]


def _attach(runners: list[FeedRunner], session: aiohttp.ClientSession) -> None:
    for r in runners:
        r.attach_http(session)
        assert r.http_only


class _LoopTurns:
    """Counts the event loop's turns while started: a test's view of whether the loop was
    held (a round's messages would wait) or free."""

    def __init__(self) -> None:
        self.turns = 0
        self._task: asyncio.Task[None] | None = None

    async def _count(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._count())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def test_one_request_per_url_each_feed_its_own_value(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    srv, base = server
    store = Store(engine)
    runners = _tickers(tmp_path, store, base, "abc")
    runners.append(_runner(tmp_path, store, "O/USD", f"{base}/other", "price"))
    runners.append(_runner(tmp_path, store, "MISSING/USD", f"{base}/prices", "zz"))
    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        await poll_http_feeds(runners)
        assert srv.hits == {"/prices": 1, "/other": 1}
        values = [r.pipeline.last_output.value if r.pipeline.last_output else None for r in runners]
        assert values[:4] == [150_000_000, 250_000_000, 350_000_000, 925_000_000]
        assert values[4] is None  # its path is missing: rejected, the others unaffected
        assert runners[4].pipeline.last_error is not None
        assert "too_few_sources" in runners[4].pipeline.last_error
        # stored before the poll ended: every feed's observation, the missing one's rejection
        assert all(r.pipeline.pending == 0 for r in runners)
        for r in runners[:4]:
            last = store.last_observation(r.pipeline.storage_id)
            assert last is not None and last.seq == 1
        rejected = store.rejection_counts(runners[4].pipeline.storage_id)
        assert rejected == {"missing_field": 1, "too_few_sources": 1}
        # a second poll: again one request per URL, a second observation each
        await asyncio.sleep(0.01)  # observation times strictly increase (ms)
        srv.prices = {**srv.prices, "zz": 7.0}
        await poll_http_feeds(runners)
        assert srv.hits == {"/prices": 2, "/other": 2}
        assert runners[4].pipeline.last_output is not None
        assert runners[4].pipeline.last_output.value == 700_000_000


async def test_checkpoints_in_slices_let_the_event_loop_in_between(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    """The node's periodic checkpoint of many feeds yields to the event loop between
    slices (a round's messages get in), and still checkpoints every feed."""
    store = Store(engine)
    runners = _tickers(tmp_path, store, server[1], "abc")
    loop = _LoopTurns()
    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        await poll_http_feeds(runners)
        loop.start()
        await asyncio.sleep(0)
        before = loop.turns
        await checkpoint_in_slices([r.pipeline for r in runners], size=1)
        during = loop.turns - before
        loop.stop()
    assert during >= 2  # the loop ran between the three slices
    for r in runners:
        ckpt = store.latest_checkpoint(r.pipeline.storage_id, r.spec.digest)
        assert ckpt is not None and ckpt.seq == 1


def test_the_flush_stores_the_feeds_holding_rows_and_asks_no_other(
    tmp_path: Path, engine: Engine
) -> None:
    """A node's periodic flush (and a round's make_durable) stores the pipelines holding
    rows, known as they buffer them, without asking every feed; a failed write keeps them
    to store; a pipeline rebuilt from storage (reload) holds nothing any more."""
    store = Store(engine)
    a, b, c = _tickers(tmp_path, store, "http://127.0.0.1:9", "abc")
    a.pipeline.ingest(RawObservation("median", 1_000, None, {"value": 1.5}))
    b.pipeline.reject("launcher", "timeout", "no answer")
    assert {a.pipeline, b.pipeline} <= set(FeedPipeline._unstored)
    assert c.pipeline not in FeedPipeline._unstored

    write = store.write_batch

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    store.write_batch = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="disk full"):
        flush_unstored(engine)
    assert {a.pipeline, b.pipeline} <= set(FeedPipeline._unstored)  # still to store
    store.write_batch = write  # type: ignore[method-assign]
    flush_unstored(engine)
    assert not {a.pipeline, b.pipeline} & set(FeedPipeline._unstored)
    last = store.last_observation(a.pipeline.storage_id)
    assert last is not None and last.seq == 1
    assert store.rejection_counts(b.pipeline.storage_id) == {"timeout": 1}
    c.pipeline.reject("launcher", "timeout", "no answer")
    c.pipeline.reload()  # buffers dropped: nothing to store
    assert c.pipeline not in FeedPipeline._unstored


async def test_a_failed_write_stores_nothing_and_rewinds_every_model(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    store = Store(engine)
    runners = _tickers(tmp_path, store, server[1], "ab")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        store.write_batch = broken  # type: ignore[method-assign]
        await poll_http_feeds(runners)
    for r in runners:
        assert r.last_poll_error is not None and "disk full" in r.last_poll_error
        assert r.pipeline.model.seq == 0 and r.pipeline.last_output is None  # reloaded
        assert store.last_observation(r.pipeline.storage_id) is None


async def test_output_look_ups_follow_the_live_mapping(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    """output_at finds a feed's runner through an index that follows runners coming and
    going (a model registered or retired on-chain)."""
    _, base = server
    store = Store(engine)
    a = _runner(tmp_path, store, "A/USD", f"{base}/prices", "a")
    b = _runner(tmp_path, store, "B/USD", f"{base}/prices", "b")
    live: dict[str, FeedRunner] = {"a": a}
    outputs = NodeOutputs(live, engine)
    async with aiohttp.ClientSession() as session:
        _attach([a, b], session)
        await poll_http_feeds([a, b])
    fa, fb = a.spec.id_bytes32, b.spec.id_bytes32
    out_a = a.pipeline.last_output
    assert out_a is not None
    got = outputs.output_at(fa, out_a.observed_at_ms // 1000)
    assert got is not None and got.value == 150_000_000
    assert outputs.output_at(fb, 0) is None  # not in the mapping
    live["b"] = b
    out_b = b.pipeline.last_output
    assert out_b is not None
    got_b = outputs.output_at(fb, out_b.observed_at_ms // 1000)
    assert got_b is not None and got_b.value == 250_000_000
    del live["a"]
    assert outputs.output_at(fa, out_a.observed_at_ms // 1000) is None  # gone
    a.reporting = False
    live["a"] = a
    assert outputs.output_at(fa, out_a.observed_at_ms // 1000) is None  # not reporting
    assert set(outputs.latest_outputs()) == {fb}


async def test_latest_outputs_change_with_any_output_and_with_the_runners(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    """A node's view of every feed's latest output is handed out again while nothing
    changed (a round asks several times), and is new after any output, a runner coming or
    going, or a runner leaving the rounds."""
    srv, base = server
    store = Store(engine)
    a = _runner(tmp_path, store, "A/USD", f"{base}/prices", "a")
    b = _runner(tmp_path, store, "B/USD", f"{base}/prices", "b")
    live: dict[str, FeedRunner] = {"a": a, "b": b}
    outputs = NodeOutputs(live, engine)
    fa, fb = a.spec.id_bytes32, b.spec.id_bytes32
    assert outputs.latest_outputs() == {}
    async with aiohttp.ClientSession() as session:
        _attach([a, b], session)
        await poll_http_feeds([a, b])
        first = outputs.latest_outputs()
        assert {f: u.value for f, u in first.items()} == {fa: 150_000_000, fb: 250_000_000}
        assert outputs.latest_outputs() is first  # nothing changed: the same answer
        await asyncio.sleep(0.01)
        srv.prices = {**srv.prices, "a": 1.75}
        await poll_http_feeds([a])  # one feed's new output
    second = outputs.latest_outputs()
    assert second[fa].value == 175_000_000 and second[fb] is first[fb]
    del live["b"]
    assert set(outputs.latest_outputs()) == {fa}
    live["b"] = b
    assert set(outputs.latest_outputs()) == {fa, fb}
    a.reporting = False
    assert set(outputs.latest_outputs()) == {fb}


async def test_an_upstream_down_stores_one_row_a_minute_per_failure_and_counts_them_all(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Polls of a source that does not answer: every failure is counted (the metric, the
    status) but stored as a row once a minute per (source, reason), so an hour of an
    upstream down under 10,000 feeds is not 72 million rows; the rows stored before stay.
    A refused observation (a datum, with what was refused) is stored every time."""
    from prometheus_client import CollectorRegistry

    from oracle.node import pipeline as pipeline_module
    from oracle.node.pipeline import FeedMetrics

    clock = [1_000_000_000]
    monkeypatch.setattr(pipeline_module.time, "time_ns", lambda: clock[0] * 1_000_000)
    store = Store(engine)
    metrics = FeedMetrics(CollectorRegistry())
    spec = FEED_SPEC.format(
        feed="DOWN/USD", decimals=8, url="http://127.0.0.1:9/prices", poll=1.0,
        deviation_bps=10, tolerance_bps=100,
    )  # fmt: skip
    (tmp_path / "down.toml").write_text(spec)
    runner = FeedRunner(load_feed_spec(tmp_path / "down.toml"), store, metrics)
    runner.restore()
    async with aiohttp.ClientSession() as session:
        runner.attach_http(session)
        for second in range(150):  # port 9 refuses: a connection error and too few sources
            clock[0] = 1_000_000_000 + second * 1000
            await poll_http_feeds([runner])
    stored = store.rejection_counts(runner.pipeline.storage_id)
    assert stored == {"connection": 3, "too_few_sources": 3}  # at 0 s, 60 s and 120 s
    assert runner.pipeline.failures_not_stored == 2 * 150 - 6
    assert runner.status()["failures_not_stored"] == 294
    counted = {
        reason: metrics.registry.get_sample_value(
            "mira_rejected_observations_total", {"feed": "DOWN/USD", "reason": reason}
        )
        for reason in ("connection", "too_few_sources")
    }
    assert counted == {"connection": 150, "too_few_sources": 150}
    times = sorted(r.received_at_ms for r in store.rejections(runner.pipeline.storage_id))
    assert times == [1_000_000_000 + s * 1000 for s in (0, 0, 60, 60, 120, 120)]
    # refused data: each its own row, however often the same reason repeats
    for i in range(5):
        runner.pipeline.ingest(RawObservation("median", 2_000 + i, None, {"value": float("nan")}))
    runner.pipeline.flush()
    assert store.rejection_counts(runner.pipeline.storage_id)["nan"] == 5


async def test_the_periodic_flush_leaves_a_group_poll_to_its_own_write(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the slices of a group poll (the event loop runs the rounds and the periodic
    flush there) the periodic flush skips the poll's pipelines: their rows go in the poll's
    one write. A round's observation (make_durable) still stores what it is based on."""
    from oracle.node import feeds as feeds_module
    from oracle.node.feeds import polling_pipelines

    monkeypatch.setattr(feeds_module, "_INGEST_SLICE", 1)  # a yield after every feed
    store = Store(engine)
    runners = _tickers(tmp_path, store, server[1], "abc")
    writes: list[int] = []
    write = store.write_batch

    def counted(obs: Any = (), *args: Any, **kwargs: Any) -> None:
        writes.append(len(obs))
        write(obs, *args, **kwargs)

    store.write_batch = counted  # type: ignore[method-assign]

    async def periodic_flush() -> None:  # what Node.flush does, as often as it can
        while True:
            flush_unstored(engine, skip=polling_pipelines())
            await asyncio.sleep(0)

    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        flusher = asyncio.create_task(periodic_flush())
        await poll_http_feeds(runners)
        assert writes == [3]  # the poll's own write, every feed's row in it
        assert not polling_pipelines()  # the poll is over: the periodic flush takes all again

        writes.clear()
        flusher.cancel()
        await asyncio.sleep(0.01)  # the next readings a millisecond later at least

        async def durable_at_each_yield() -> None:  # a round's observation mid-poll
            while True:
                flush_unstored(engine)
                await asyncio.sleep(0)

        durable = asyncio.create_task(durable_at_each_yield())
        await poll_http_feeds(runners)
        durable.cancel()
    assert sum(writes) == 3 and len(writes) > 1  # stored as they were ingested
    for r in runners:
        last = store.last_observation(r.pipeline.storage_id)
        assert last is not None and last.seq == 2


async def test_a_failed_write_reloads_the_polled_feeds_together_to_where_they_were(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    """After a group poll's failed write, each feed is back where it was before that poll
    (model, checkpoint, dedup key; outputs as a restore from storage gives them), from a
    few statements for all of them, not four a feed."""
    srv, base = server
    store = Store(engine)
    runners = _tickers(tmp_path, store, base, "abcd")
    a, b, c, d = runners
    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        # every state a reload meets: a checkpoint and rows after it (a), rows and no
        # checkpoint (b), a checkpoint and nothing after it (c), nothing stored (d: its
        # path is missing until the last poll)
        for k in range(3):
            if k == 2:
                checkpoint_together([a.pipeline, c.pipeline])
            srv.prices = {"a": 1.5 + k, "b": 2.5 + k, "c": 3.5 + k}
            await asyncio.sleep(0.01)  # observation times strictly increase (ms)
            await poll_http_feeds([a, b] if k == 2 else runners)
        before = [_kept(r.pipeline) for r in runners]
        assert [(k[0], k[2]) for k in before] == [(3, 2), (3, 0), (2, 2), (0, 0)]  # seq, ckpt
        srv.prices = {"a": 9.0, "b": 9.0, "c": 9.0, "d": 9.0}
        await asyncio.sleep(0.01)
        real = store.write_batch
        statements: list[str] = []

        def broken(*args: Any, **kwargs: Any) -> None:
            event.listen(engine, "before_cursor_execute", count)  # what the reload runs
            raise RuntimeError("disk full")

        def count(*args: Any) -> None:
            statements.append(args[2])

        store.write_batch = broken  # type: ignore[method-assign]
        try:
            await poll_http_feeds(runners)
        finally:
            event.remove(engine, "before_cursor_execute", count)
            store.write_batch = real  # type: ignore[method-assign]
    assert [_kept(r.pipeline) for r in runners] == before
    assert all(r.last_poll_error == "RuntimeError: disk full" for r in runners)
    assert all(r.pipeline.pending == 0 for r in runners)
    assert len(statements) <= 4  # checkpoints, outputs, observations, last dedup keys
    # the full state (recent outputs too) is what restoring each feed alone gives
    for r in runners:
        alone = FeedPipeline(r.spec, store)
        alone.restore()
        assert _state(r.pipeline) == _state(alone)
    assert d.pipeline.model.seq == 0 and d.pipeline.last_output is None


def _kept(p: FeedPipeline) -> tuple[Any, ...]:
    """What a reload must give back exactly as it was before the failed poll."""
    return (p.model.seq, p.model.commitment(), p._checkpoint_seq, p.last_dedup_key)


def _state(p: FeedPipeline) -> tuple[Any, ...]:
    return (*_kept(p), p.last_output, list(p.recent_outputs))


# -- the group poll's write, off the event loop ------------------------------------------------


class _HeldWrite:
    """Store.write_batch held in its thread until released: the write in flight that a
    test looks at from the event loop. Optionally fails once released."""

    def __init__(self, store: Store, *, fail: bool = False) -> None:
        self.write = store.write_batch
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []
        self.fail = fail
        store.write_batch = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.threads.append(threading.current_thread().name)
        self.started.set()
        assert self.release.wait(10), "the test never released the write"
        if self.fail:
            raise RuntimeError("disk full")
        self.write(*args, **kwargs)

    async def in_flight(self) -> None:
        """Until the write has started in its thread (the loop keeps running meanwhile)."""
        for _ in range(1000):
            if self.started.is_set():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the write never started")


async def test_a_group_poll_writes_off_the_event_loop_and_rounds_run_meanwhile(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    """A group poll's write runs in a worker thread: while it is held there the event
    loop runs other tasks (a round's messages) — a write on the loop would let none in
    until it ended. Once released, every row is stored and counted."""
    store = Store(engine)
    runners = _tickers(tmp_path, store, server[1], "abc")
    held = _HeldWrite(store)
    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        poll = asyncio.create_task(poll_http_feeds(runners))
        await held.in_flight()  # the loop runs this task while the write is held
        assert not poll.done()
        assert all(r.pipeline.pending == 0 for r in runners)  # taken by the write
        held.release.set()
        await poll
    assert held.threads and held.threads[0] != threading.current_thread().name
    for r in runners:
        assert r.last_poll_error is None
        last = store.last_observation(r.pipeline.storage_id)
        assert last is not None and last.seq == 1


async def test_a_round_sends_outputs_only_once_the_write_holding_them_has_landed(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    """make_durable (before a round sends outputs) waits for the group poll's write in
    flight, without holding the event loop: when it returns, the outputs it is about to
    send are stored."""
    store = Store(engine)
    runners = _tickers(tmp_path, store, server[1], "ab")
    outputs = NodeOutputs({r.spec.id: r for r in runners}, engine)
    held = _HeldWrite(store)
    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        poll = asyncio.create_task(poll_http_feeds(runners))
        await held.in_flight()
        assert outputs.latest_outputs()  # in memory: what a round would send
        assert store.last_observation(runners[0].pipeline.storage_id) is None
        durable = asyncio.create_task(outputs.make_durable())
        await asyncio.sleep(0.05)
        assert not durable.done()  # waiting for the write, the loop running meanwhile
        held.release.set()
        await durable
        for r in runners:
            assert store.last_observation(r.pipeline.storage_id) is not None
            assert store.latest_output(r.pipeline.storage_id) is not None
        await poll
    assert all(r.last_poll_error is None for r in runners)


async def test_a_failed_write_in_flight_rewinds_its_feeds_before_anything_newer_is_stored(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline's rows reach storage in order: a write of a feed whose group write is in
    flight waits for it, and if that write failed, the feed is rewound to what is stored
    (once, together) and the newer rows it buffered meanwhile are dropped with it — never
    stored after a gap. The poll still reports the failure on every feed."""
    from oracle.node import pipeline as pipeline_module

    store = Store(engine)
    runners = _tickers(tmp_path, store, server[1], "ab")
    reloads: list[int] = []
    reload_together = pipeline_module.reload_together

    def counted(pipelines: Any) -> list[int]:
        reloads.append(len(pipelines))
        return reload_together(pipelines)

    monkeypatch.setattr(pipeline_module, "reload_together", counted)
    held = _HeldWrite(store, fail=True)
    a = runners[0].pipeline
    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        poll = asyncio.create_task(poll_http_feeds(runners))
        await held.in_flight()
        assert a.model.seq == 1
        later = a.model.state.last_observed_at_ms + 1
        a.ingest(RawObservation("median", later, None, {"value": 4.0}))
        assert a.model.seq == 2 and a.pending == 1
        threading.Timer(0.2, held.release.set).start()
        pipeline_module.flush_together([a])  # waits for the failed write: a rewound first
        await poll
    assert reloads == [2]  # both feeds of the failed write, together, once
    assert a.model.seq == 0 and a.pending == 0  # the newer row went with the rewind
    for r in runners:
        assert r.last_poll_error is not None and "disk full" in r.last_poll_error
        assert store.last_observation(r.pipeline.storage_id) is None


async def test_a_cancelled_poll_still_stores_what_its_write_took(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    """Rows taken from the buffers are stored (or their feeds rewound) whatever happens to
    the poll: cancelling it mid-write (a node stopping) loses nothing, and the node's next
    checkpoint accounts for the write first."""
    from oracle.node.pipeline import checkpoint_together

    store = Store(engine)
    runners = _tickers(tmp_path, store, server[1], "ab")
    held = _HeldWrite(store)
    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        poll = asyncio.create_task(poll_http_feeds(runners))
        await held.in_flight()
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll
    threading.Timer(0.2, held.release.set).start()
    checkpoint_together([r.pipeline for r in runners])  # what a stopping node does
    for r in runners:
        last = store.last_observation(r.pipeline.storage_id)
        assert last is not None and last.seq == 1
        checkpoint = store.latest_checkpoint(r.pipeline.storage_id, r.spec.digest)
        assert checkpoint is not None and checkpoint.seq == 1


def test_updates_at_gives_the_newest_output_of_that_second(tmp_path: Path, engine: Engine) -> None:
    """A follower's look-up of its own output at a leaf's second: the newest recent output
    observed in that second, or none; the same as walking every recent output."""
    runner = _runner(tmp_path, Store(engine), "A/USD", "http://127.0.0.1:9/prices", "a")
    times = [1_000_100, 1_000_900, 1_002_000, 1_002_999, 1_004_500, 1_007_000, 1_007_001]
    for i, at in enumerate(times):
        out = runner.pipeline.ingest(RawObservation("median", at, None, {"value": 1.0 + i}))
        assert out is not None

    def walked(second: int) -> list[Any]:  # every recent output, newest first
        for out in reversed(runner.pipeline.recent_outputs):
            if out.observed_at_ms // 1000 == second:
                return runner._updates(out)
        return []

    for second in range(995, 1012):
        assert runner.updates_at(second) == walked(second), second
    assert [u.value for u in runner.updates_at(1000)] == [200_000_000]  # 1_000_900's
    assert runner.updates_at(1007) is runner.latest_updates()  # built once
    older = runner.updates_at(1002)
    assert runner.updates_at(1002) is older  # built once while it is the one asked for
    assert runner.updates_at(1000) is not older


async def test_a_round_waiting_with_a_poll_on_a_write_does_not_hold_the_loop_for_the_next(
    tmp_path: Path, engine: Engine
) -> None:
    """A round (make_durable) and another group poll wait for the same write in flight;
    when it lands the poll starts its own write: the round then awaits that one too, it
    does not block the event loop on it (it did, settling the newest write in flight
    after awaiting the first)."""
    from oracle.node.pipeline import flush_off_loop

    store = Store(engine)
    runners = _tickers(tmp_path, store, "http://127.0.0.1:9", "ab")
    a, b = (r.pipeline for r in runners)
    outputs = NodeOutputs({r.spec.id: r for r in runners}, engine)
    write = store.write_batch
    started = [threading.Event(), threading.Event()]
    go = [threading.Event(), threading.Event()]

    def held_in_turn(*args: Any, **kwargs: Any) -> None:
        i = 0 if not started[0].is_set() else 1
        started[i].set()
        assert go[i].wait(10)
        write(*args, **kwargs)

    store.write_batch = held_in_turn  # type: ignore[method-assign]
    a.ingest(RawObservation("median", 1_000, None, {"value": 1.5}))
    first = asyncio.create_task(flush_off_loop([a]))
    while not started[0].is_set():
        await asyncio.sleep(0.01)
    b.ingest(RawObservation("median", 1_000, None, {"value": 2.5}))
    # woken in this order: the poll starts the next write before the round looks
    rounds = [asyncio.create_task(flush_off_loop([b])), asyncio.create_task(outputs.make_durable())]
    await asyncio.sleep(0.05)
    go[0].set()
    while not started[1].is_set():  # the next write (b's rows) is under way, held
        await asyncio.sleep(0.01)
    threading.Timer(3.0, go[1].set).start()  # were the loop held, it would be until then
    loop = asyncio.get_running_loop()
    before = loop.time()
    await asyncio.sleep(0.05)
    assert loop.time() - before < 1.0 and not any(r.done() for r in rounds)
    go[1].set()
    await asyncio.gather(first, *rounds)
    for p in (a, b):
        last = store.last_observation(p.storage_id)
        assert last is not None and last.seq == 1


async def test_group_polls_fold_the_one_entry_runs_they_leave(
    tmp_path: Path, engine: Engine
) -> None:
    """Each group poll's write stores a one-entry run a feed; after it, in the writer's
    thread, the feeds that wrote enough of them are folded: a feed then holds a few runs,
    and every observation and output reads back. A fold that fails changes nothing and
    the polls go on."""
    from sqlalchemy import text

    from oracle.node import pipeline as node_pipeline
    from oracle.node.pipeline import flush_off_loop
    from oracle.storage.store import FOLD_AFTER

    store = Store(engine)
    runners = _tickers(tmp_path, store, "http://127.0.0.1:9", "ab")
    pipes = [r.pipeline for r in runners]
    polls = FOLD_AFTER + 8

    def runs(feed: str) -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM observation_runs WHERE feed_id = :f"), {"f": feed}
                ).scalar_one()
            )

    async def poll(at: int) -> None:
        for i, p in enumerate(pipes):
            p.ingest(RawObservation("median", 1_000 * at, None, {"value": 1.5 + i + at / 100}))
        await flush_off_loop(pipes)
        assert node_pipeline._WRITER is not None
        await asyncio.wrap_future(node_pipeline._WRITER.submit(lambda: None))  # the fold too

    for at in range(1, polls + 1):
        await poll(at)
    for p in pipes:
        assert runs(p.storage_id) < polls // 4
        assert [o.seq for o in store.observations_after(p.storage_id, 0)] == list(
            range(1, polls + 1)
        )
        assert [o.seq for o in store.outputs(p.storage_id)] == list(range(1, polls + 1))

    def broken(**kwargs: Any) -> int:
        raise RuntimeError("disk I/O error")

    store.fold_runs = broken  # type: ignore[method-assign]
    with structlog.testing.capture_logs() as logs:
        for at in range(polls + 1, polls + 4):
            await poll(at)
    assert [e["error"] for e in logs if e["event"] == "storage.fold_failed"] == [
        "RuntimeError: disk I/O error"
    ] * 3
    assert store.last_observation(pipes[0].storage_id).seq == polls + 3  # type: ignore[union-attr]


async def test_the_periodic_checkpoint_waits_for_the_write_in_flight_without_holding_the_loop(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    """A node's minute checkpoint meets a group poll's write in flight: it awaits that write
    (a round's messages get in meanwhile: the loop is not held), then writes its slices in
    the writer's thread, and each checkpoint is of a state whose rows are all stored."""
    store = Store(engine)
    runners = _tickers(tmp_path, store, server[1], "abc")
    held = _HeldWrite(store)
    saved_in: list[str] = []
    save = store.save_checkpoints

    def recorded(*args: Any, **kwargs: Any) -> None:
        saved_in.append(threading.current_thread().name)
        save(*args, **kwargs)

    store.save_checkpoints = recorded  # type: ignore[method-assign]
    loop = _LoopTurns()
    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        poll = asyncio.create_task(poll_http_feeds(runners))
        await held.in_flight()
        loop.start()
        checkpoint = asyncio.create_task(
            checkpoint_in_slices([r.pipeline for r in runners], size=2)
        )
        await asyncio.sleep(0.1)
        assert not checkpoint.done() and saved_in == []  # waiting for the write
        before = loop.turns
        await asyncio.sleep(0.1)
        assert loop.turns - before > 10  # ... with the loop free meanwhile
        held.release.set()
        await checkpoint
        loop.stop()
        await poll
    assert saved_in and all(name.startswith("mira-store-write") for name in saved_in)
    for r in runners:
        ckpt = store.latest_checkpoint(r.pipeline.storage_id, r.spec.digest)
        assert ckpt is not None and ckpt.seq == 1 and r.pipeline._checkpoint_seq == 1


async def test_a_checkpoint_after_a_failed_write_in_flight_is_of_what_is_stored(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    """The write a checkpoint awaits fails: the feeds are rewound to what is stored before
    any checkpoint is taken, so none is saved of a state whose rows were lost."""
    store = Store(engine)
    runners = _tickers(tmp_path, store, server[1], "ab")
    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        await poll_http_feeds(runners)  # seq 1 stored
        await checkpoint_in_slices([r.pipeline for r in runners])
        srv = server[0]
        srv.prices = {"a": 7.5, "b": 8.5}
        await asyncio.sleep(0.01)  # observation times strictly increase (ms)
        held = _HeldWrite(store, fail=True)
        poll = asyncio.create_task(poll_http_feeds(runners))
        await held.in_flight()
        assert all(r.pipeline.model.seq == 2 for r in runners)  # ahead of storage
        checkpoint = asyncio.create_task(checkpoint_in_slices([r.pipeline for r in runners]))
        await asyncio.sleep(0.05)
        held.release.set()
        await checkpoint
        await poll
    for r in runners:
        assert r.pipeline.model.seq == 1  # rewound
        ckpt = store.latest_checkpoint(r.pipeline.storage_id, r.spec.digest)
        assert ckpt is not None and ckpt.seq == 1
        last = store.last_observation(r.pipeline.storage_id)
        assert last is not None and last.seq == 1


async def test_a_stop_after_a_cancelled_checkpoint_saves_nothing_twice(
    tmp_path: Path, engine: Engine, server: tuple[_Server, str]
) -> None:
    """A node stopping cancels its periodic checkpoint while the writer's thread saves it;
    the stop's own checkpoint waits for that save and does not save the same checkpoint
    again (one a feed and seq: the second would fail, and take the stop's others with it)."""
    store = Store(engine)
    runners = _tickers(tmp_path, store, server[1], "ab")
    save = store.save_checkpoints
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def held(*args: Any, **kwargs: Any) -> None:
        started.set()
        assert release.wait(10), "the test never released the save"
        try:
            save(*args, **kwargs)
        except BaseException as exc:  # what a second save of the same checkpoint raises
            errors.append(exc)
            raise

    async with aiohttp.ClientSession() as session:
        _attach(runners, session)
        await poll_http_feeds(runners)
        store.save_checkpoints = held  # type: ignore[method-assign]
        periodic = asyncio.create_task(checkpoint_in_slices([r.pipeline for r in runners]))
        for _ in range(500):
            if started.is_set():
                break
            await asyncio.sleep(0.01)
        assert started.is_set()
        periodic.cancel()
        with pytest.raises(asyncio.CancelledError):
            await periodic
    threading.Timer(0.2, release.set).start()
    checkpoint_together([r.pipeline for r in runners])  # what a stopping node does
    assert errors == []
    for r in runners:
        ckpt = store.latest_checkpoint(r.pipeline.storage_id, r.spec.digest)
        assert ckpt is not None and ckpt.seq == 1 and r.pipeline._checkpoint_seq == 1
