from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from oracle.config import load_feed_spec
from oracle.models import FeedModel
from oracle.node.pipeline import FeedPipeline
from oracle.sources.replay import RawObservation, ReplaySource
from oracle.storage import Store
from tests.fixtures.db import Backend
from tests.harness.faults import model_error_on_call

REPO = Path(__file__).resolve().parents[2]
SP500 = load_feed_spec(REPO / "feeds" / "sp500_forecast.toml")


def run(pipe: FeedPipeline, start: int, stop: int, flush_every: int = 100) -> None:
    src = ReplaySource(SP500.sources[0])  # type: ignore[arg-type]
    for i, obs in enumerate(src.read(start, stop - start)):
        pipe.ingest(obs)
        if i % flush_every == flush_every - 1:
            pipe.flush()
    pipe.flush()


def uninterrupted(n: int) -> list[tuple[int, int, bytes, bool]]:
    """Outputs of an in-memory run with no storage and no restart."""
    model = FeedModel(SP500)
    fields = SP500.features.record_fields
    out = []
    for obs in ReplaySource(SP500.sources[0]).read(0, n):  # type: ignore[arg-type]
        o = model.step({k: float(obs.raw[k]) for k in fields}, obs.observed_at_ms)
        if o is not None:
            out.append((o.seq, o.value, o.commitment, o.publish))
    return out


def test_restart_gives_exactly_the_uninterrupted_outputs(backend: Backend, engine: Engine) -> None:
    first = FeedPipeline(SP500, Store(engine))
    run(first, 0, 250)
    first.checkpoint()
    run(first, 250, 330)  # stored after the checkpoint: re-run on restore
    engine.dispose()
    del first  # "killed": only what was flushed survives

    restarted = FeedPipeline(SP500, Store(backend.engine()))
    assert restarted.restore() == 80
    assert restarted.model.seq == 330
    run(restarted, 330, 600)
    got = [
        (o.seq, o.value, o.commitment, o.publish)
        for o in restarted.store.outputs(SP500.id, limit=10_000)
    ]
    assert got == uninterrupted(600)


def test_restore_without_checkpoint_replays_everything(engine: Engine) -> None:
    first = FeedPipeline(SP500, Store(engine))
    run(first, 0, 50)
    again = FeedPipeline(SP500, Store(engine))
    assert again.restore() == 50
    assert again.model.commitment() == first.model.commitment()


BAD = [
    ({"AAPL": math.nan}, "nan"),
    ({"AAPL": math.inf}, "infinite"),
    ({"AAPL": -math.inf}, "infinite"),
    ({"AAPL": "twelve"}, "not_a_number"),
    ({"AAPL": 1e300}, "out_of_range"),
    ({"AAPL": None}, "missing_field"),
    ({"AAPL": [1]}, "not_a_number"),
    ({"AAPL": True}, "not_a_number"),
]


@pytest.mark.parametrize(("patch", "reason"), BAD, ids=[r for _, r in BAD])
def test_bad_observation_is_rejected_stored_and_the_feed_continues(
    engine: Engine, patch: dict[str, object], reason: str
) -> None:
    store = Store(engine)
    pipe = FeedPipeline(SP500, store)
    run(pipe, 0, 20)
    before = store.outputs(SP500.id)
    good = next(ReplaySource(SP500.sources[0]).read(20, 1))  # type: ignore[arg-type]
    pipe.ingest(RawObservation("sp500", good.observed_at_ms, "bad", {**good.raw, **patch}))
    pipe.flush()
    assert store.rejection_counts(SP500.id) == {reason: 1}
    [rej] = store.rejections(SP500.id)
    assert rej.reason == reason and "AAPL" in rej.detail
    assert store.outputs(SP500.id) == before  # nothing stored was touched
    run(pipe, 20, 30)  # the feed continues with the next good rows
    assert len(store.outputs(SP500.id)) == len(before) + 10


class _Price(float):
    """A float subclass, as a source's library may hand over."""


@pytest.mark.parametrize(
    "convert",
    [np.float64, _Price, lambda v: int(v * 1e6)],
    ids=["numpy.float64", "float subclass", "int"],
)
def test_numbers_that_are_not_plain_floats_are_learned_and_stored_as_floats(
    engine: Engine, convert: Callable[[float], object]
) -> None:
    """What the model learns and the stored record holds is a plain float: the row is
    JSON (a numpy.float64 was once written as ``np.float64(0.01)``, and a record that
    cannot be written must never be one the model has already learned), and a restart
    re-runs it to the same state."""
    store = Store(engine)
    pipe = FeedPipeline(SP500, store)
    run(pipe, 0, 20)
    good = next(ReplaySource(SP500.sources[0]).read(20, 1))  # type: ignore[arg-type]
    odd = {k: convert(v) if k == "AAPL" else v for k, v in good.raw.items()}
    out = pipe.ingest(RawObservation("sp500", good.observed_at_ms, "odd", odd))
    assert out is not None
    pipe.flush()
    stored = store.last_observation(SP500.id)
    assert stored is not None and stored.seq == 21
    record = stored.record
    assert type(record["AAPL"]) is float and record["AAPL"] == float(odd["AAPL"])  # type: ignore[arg-type]
    again = FeedPipeline(SP500, Store(engine))
    assert again.restore() == 21
    assert again.model.commitment() == pipe.model.commitment()


@pytest.mark.parametrize(
    ("patch", "accepted"),
    [
        ({"AAPL": 1e30}, True),  # MAX_ABS itself
        ({"AAPL": -1e30}, True),
        # each within MAX_ABS, their norm beyond it: the checked path decides, and takes them
        ({k: 9e29 for k in ("AAPL", "AMZN", "IBM")}, True),
        ({"AAPL": 1.0000000000000001e30 * 1.01}, False),
        ({"AAPL": 5e-324}, True),  # subnormal
        ({"AAPL": -0.0}, True),
        ({"AAPL": math.nan}, False),
        ({"AAPL": math.inf, "AMZN": math.nan}, False),
        ({"AAPL": True}, False),
    ],
)
def test_the_fast_check_and_the_checked_path_agree_at_the_edges(
    engine: Engine, patch: dict[str, object], accepted: bool
) -> None:
    """A record is accepted or refused the same whichever path looks at it: the fast
    path's norm check sends what it cannot vouch for to the checked path."""
    pipe = FeedPipeline(SP500, Store(engine))
    run(pipe, 0, 20)
    good = next(ReplaySource(SP500.sources[0]).read(20, 1))  # type: ignore[arg-type]
    pipe.ingest(RawObservation("sp500", good.observed_at_ms, "edge", {**good.raw, **patch}))
    pipe.flush()
    stored = pipe.store.last_observation(SP500.id)
    assert stored is not None
    assert (stored.seq == 21) is accepted
    if accepted:
        record = stored.record
        assert all(record[k] == v and type(record[k]) is float for k, v in patch.items())
    else:
        assert sum(pipe.store.rejection_counts(SP500.id).values()) == 1


def test_missing_field_and_out_of_order(engine: Engine) -> None:
    store = Store(engine)
    pipe = FeedPipeline(SP500, store)
    run(pipe, 0, 5)
    good = next(ReplaySource(SP500.sources[0]).read(5, 1))  # type: ignore[arg-type]
    raw = dict(good.raw)
    del raw["KO"]
    pipe.ingest(RawObservation("sp500", good.observed_at_ms, "x", raw))
    pipe.ingest(RawObservation("sp500", 0, "y", good.raw))  # older than the last one
    pipe.flush()
    assert store.rejection_counts(SP500.id) == {"missing_field": 1, "out_of_order": 1}
    assert store.count_observations(SP500.id) == 5


def test_counters_count_the_rows_each_write_stored(engine: Engine) -> None:
    """The observation and output counters move once per write, by what it stored; rows
    dropped after a failed write (reload) are never counted."""
    from prometheus_client import CollectorRegistry

    from oracle.node.pipeline import FeedMetrics, flush_together

    registry = CollectorRegistry()
    pipe = FeedPipeline(SP500, Store(engine), FeedMetrics(registry))

    def counted() -> tuple[float | None, float | None]:
        labels = {"feed": SP500.id}
        return (
            registry.get_sample_value("mira_observations_total", labels),
            registry.get_sample_value("mira_outputs_total", labels),
        )

    rows = list(ReplaySource(SP500.sources[0]).read(0, 40))  # type: ignore[arg-type]
    for obs in rows[:30]:
        pipe.ingest(obs)
    assert counted() == (0.0, 0.0)  # nothing stored yet
    outputs = sum(1 for _ in pipe._out)
    pipe.flush()
    assert counted() == (30.0, float(outputs)) and outputs > 0
    for obs in rows[30:35]:
        pipe.ingest(obs)
    pipe.reload()  # as after a failed write: the buffered rows are gone
    assert counted() == (30.0, float(outputs))
    for obs in rows[35:]:
        pipe.ingest(obs)
    flush_together([pipe])
    assert counted() == (35.0, float(outputs + 5))


def _batch_with_bad_rows() -> list[RawObservation]:
    """60 SP500 rows with refused ones among them: every kind of bad value, one out of
    order, one that is not a plain float (accepted), and the last one refused."""
    rows = list(ReplaySource(SP500.sources[0]).read(0, 60))  # type: ignore[arg-type]
    out: list[RawObservation] = []
    for i, obs in enumerate(rows):
        if i % 7 == 3:
            patch, _ = BAD[(i // 7) % len(BAD)]
            out.append(RawObservation("sp500", obs.observed_at_ms, f"bad{i}", {**obs.raw, **patch}))
        if i == 30:
            out.append(out[-1])  # the same time again: out of order
        if i == 40:
            obs = RawObservation(
                obs.source, obs.observed_at_ms, obs.dedup_key, {**obs.raw, "AAPL": np.float64(1.5)}
            )
        out.append(obs)
    last = rows[-1]
    out.append(RawObservation("sp500", last.observed_at_ms + 1, "late", {**last.raw, "KO": "x"}))
    return out


def _buffered(pipe: FeedPipeline) -> tuple[object, ...]:
    """What a pipeline holds for storage and for rounds, its storage id left out."""
    return (
        [row[1:] for row in pipe._obs],
        [row[1:] for row in pipe._out],
        [(r.source, r.reason, r.detail, r.raw) for r in pipe._rej],
        pipe.last_output,
        list(pipe.recent_outputs),
        pipe.last_dedup_key,
        pipe._outputs_pending,
        pipe in FeedPipeline._unstored,
        pipe.last_error,
    )


def test_a_batch_is_ingested_as_its_observations_one_by_one(engine: Engine) -> None:
    """ingest_many (a replay poll's batch) buffers the same rows, refuses the same rows
    with the same reasons, and leaves the same outputs and keys as ingest() of each."""
    batch = _batch_with_bad_rows()
    store = Store(engine)
    one_by_one = FeedPipeline(SP500, store, storage_id="one")
    answers = [one_by_one.ingest(obs) for obs in batch]
    together = FeedPipeline(SP500, store, storage_id="batch")
    assert together.ingest_many(iter(batch)) == answers[-1] is None  # the last was refused
    assert _buffered(together) == _buffered(one_by_one)
    assert len(together._rej) == 11 and together._outputs_pending == len(together._out)
    assert together.ingest_many(batch[:-1]) is None  # all refused again: out of order
    assert together.ingest_many([]) is None
    good = next(ReplaySource(SP500.sources[0]).read(60, 1))  # type: ignore[arg-type]
    assert together.ingest_many([good]) == together.last_output == one_by_one.ingest(good)
    together.flush()
    one_by_one.flush()
    assert [o[1:] for o in store.outputs("batch")] == [o[1:] for o in store.outputs("one")]


def test_an_empty_batch_changes_nothing(engine: Engine) -> None:
    pipe = FeedPipeline(SP500, Store(engine))
    before = _buffered(pipe)
    assert pipe.ingest_many([]) is None
    assert _buffered(pipe) == before and pipe not in FeedPipeline._unstored


def test_a_model_error_stops_a_batch_with_what_came_before_it_kept(engine: Engine) -> None:
    """A model error on a row ends the batch there (the error is the caller's): the rows
    before it stay buffered to be stored, and the feed's newest output and key are theirs."""
    from oracle.models import ModelError

    rows = list(ReplaySource(SP500.sources[0]).read(0, 30))  # type: ignore[arg-type]
    pipe = FeedPipeline(SP500, Store(engine))
    model_error_on_call(pipe.model, 21, "feed SP500: the model produced nan")
    with pytest.raises(ModelError, match="produced nan"):
        pipe.ingest_many(rows)
    assert [r.seq for r in pipe._obs] == list(range(1, 21))
    assert pipe.last_dedup_key == rows[19].dedup_key
    assert pipe.last_output is not None and pipe.last_output is pipe.recent_outputs[-1]
    assert pipe.last_output.observed_at_ms == rows[19].observed_at_ms
    assert pipe in FeedPipeline._unstored
    pipe.flush()
    assert pipe.store.count_observations(SP500.id) == 20


def test_an_unquantizable_output_stores_its_observation_without_an_output(
    engine: Engine, tmp_path: Path
) -> None:
    """A value the feed's int128 fixed point cannot hold (here 1e29 with 18 decimals) is
    consumed and stored, refused as an output with its reason, and the feed goes on: the
    same whether it comes alone or inside a batch."""
    from oracle.devnet.localnet import FEED_SPEC

    path = tmp_path / "big.toml"
    path.write_text(
        FEED_SPEC.format(
            feed="BIG/USD",
            decimals=18,
            poll=1,
            url="http://127.0.0.1:1/x",
            deviation_bps=50,
            tolerance_bps=100,
        )
    )
    spec = load_feed_spec(path)
    rows = [
        RawObservation("launcher", 1_700_000_000_000 + i, None, {"value": v})
        for i, v in enumerate([100.0, 1e29, 101.0])
    ]
    store = Store(engine)
    alone = FeedPipeline(spec, store, storage_id="alone")
    answers = [alone.ingest(obs) for obs in rows]
    assert answers[1] is None and answers[0] is not None and answers[2] is not None
    together = FeedPipeline(spec, store, storage_id="together")
    assert together.ingest_many(rows) == answers[2]
    for pipe in (alone, together):
        assert [r.seq for r in pipe._obs] == [1, 2, 3]
        assert [(o.seq, o.value) for o in pipe._out] == [(1, 100 * 10**18), (3, 101 * 10**18)]
        assert [r.reason for r in pipe._rej] == ["unquantizable_output"]
        assert pipe.last_error is not None and "outside int128" in pipe.last_error
    assert _buffered(together) == _buffered(alone)
