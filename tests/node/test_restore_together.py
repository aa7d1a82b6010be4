"""Restoring many feeds together (oracle.node.pipeline.restore_together) gives every feed
exactly what restoring it alone, feed by feed as the node did before, gives: model state,
last and recent outputs, checkpoint seq, last dedup key; and fails the same way."""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from oracle.config import FeedSpec, load_feed_spec
from oracle.devnet.localnet import DECIMALS, FEED_SPEC
from oracle.models import ModelError, QuantizationError
from oracle.node.pipeline import FeedPipeline, restore_together
from oracle.registry.state import storage_id
from oracle.sources.replay import RawObservation, ReplaySource
from oracle.storage import Store
from oracle.storage.schema import ModelCheckpoint
from tests.harness.stored_runs import change_output
from tests.models.policy_specs import EXAMPLE

REPO = Path(__file__).resolve().parents[2]
SP500 = load_feed_spec(REPO / "feeds" / "sp500_forecast.toml")
POLICY = load_feed_spec(EXAMPLE)
T0 = 1_700_000_000_000


def value_spec(tmp_path: Path, i: int) -> FeedSpec:
    path = tmp_path / f"value_{i}.toml"
    path.write_text(
        FEED_SPEC.format(
            feed=f"PULL-{i}/USD",
            decimals=DECIMALS,
            url="http://127.0.0.1:9/prices",
            poll=1.0,
            deviation_bps=50,
            tolerance_bps=100,
        )
    )
    return load_feed_spec(path)


def feed_values(pipe: FeedPipeline, start: int, stop: int, *, bad_at: int | None = None) -> None:
    for k in range(start, stop):
        value: Any = math.nan if k == bad_at else 100.0 + 0.5 * k
        # a dedup key (an HTTP reading has none) shows which observation a restore ends at
        pipe.ingest(RawObservation("median", T0 + 1000 * k, f"v:{k}", {"value": value}))
    pipe.flush()


def feed_replay(pipe: FeedPipeline, start: int, stop: int) -> None:
    for obs in ReplaySource(pipe.spec.sources[0]).read(start, stop - start):  # type: ignore[arg-type]
        pipe.ingest(obs)
    pipe.flush()


def per_feed_restore(p: FeedPipeline) -> int:
    """The per-feed restore as it was before feeds were restored together (four queries a
    feed): the reference."""
    t = ModelCheckpoint.__table__
    stmt = (
        select(t.c.state, t.c.seq)
        .where(t.c.feed_id == p.storage_id, t.c.spec_digest == p.spec.digest)
        .order_by(t.c.seq.desc())
        .limit(1)
    )
    with p.store.engine.connect() as conn:
        ckpt = conn.execute(stmt).first()
    after = 0
    if ckpt is not None:
        p.model.restore(bytes(ckpt.state))
        after = p._checkpoint_seq = ckpt.seq
    expected = {
        (o.feed_id, o.seq): o
        for output_id in p._output_ids
        for o in p.store.outputs(output_id, after_seq=after, limit=10**9)
    }
    replayed = 0
    for row in p.store.observations_after(p.storage_id, after):
        try:
            out = p.model.step(row.record, row.observed_at_ms)
        except QuantizationError:
            out = None
        if out is not None:
            values = [a.value for a in out.arms] if out.arms else [out.value]
            for output_id, value in zip(p._output_ids, values, strict=True):
                stored = expected.get((output_id, row.seq))
                if stored is not None and (stored.value, stored.commitment) != (
                    value,
                    out.commitment,
                ):
                    raise ModelError(f"feed {output_id}: replaying observation {row.seq}")
            p.last_output = out
            p.recent_outputs.append(out)
        replayed += 1
    last = p.store.last_observation(p.storage_id)
    p.last_dedup_key = last.dedup_key if last is not None else None
    return replayed


def state(p: FeedPipeline) -> tuple[Any, ...]:
    return (
        p.model.seq,
        p.model.commitment(),
        p._checkpoint_seq,
        p.last_output,
        list(p.recent_outputs),
        p.last_dedup_key,
    )


def stored_feeds(engine: Engine, tmp_path: Path) -> list[tuple[FeedSpec, str | None]]:
    """Feeds in every state a restore meets; returns (spec, storage id) of each."""
    store = Store(engine)
    values = [value_spec(tmp_path, i) for i in range(6)]
    made: list[tuple[FeedSpec, str | None]] = [(s, None) for s in values]
    # 0: nothing stored; 1: observations, no checkpoint; 2: a checkpoint, nothing after it
    feed_values(FeedPipeline(values[1], store), 0, 7)
    p = FeedPipeline(values[2], store)
    feed_values(p, 0, 5)
    p.checkpoint()
    # 3: a checkpoint, observations after it (and a rejection); 4: the same, a longer run
    for spec, n in ((values[3], 9), (values[4], 40)):
        p = FeedPipeline(spec, store)
        feed_values(p, 0, 4)
        p.checkpoint()
        feed_values(p, 4, n, bad_at=6)
    # 5: only a checkpoint of another spec (an older version of the file): replayed from 0
    p = FeedPipeline(values[5], store)
    feed_values(p, 0, 6)
    row = p.checkpoint_row()
    assert row is not None
    store.save_checkpoint(dataclasses.replace(row, seq=3, spec_digest=b"\x01" * 32))
    # a model, and a registered version of a policy (its rows under its own storage id)
    for spec, sid in ((SP500, None), (POLICY, storage_id(1, 2))):
        p = FeedPipeline(spec, store, storage_id=sid)
        feed_replay(p, 0, 60)
        p.checkpoint()
        feed_replay(p, 60, 75)
        made.append((spec, sid))
    return made


@pytest.mark.parametrize(("chunk", "batch"), [(500, 500), (3, 5)])
def test_restoring_together_equals_restoring_each(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, batch: int
) -> None:
    feeds = stored_feeds(engine, tmp_path)
    store = Store(engine)
    alone = [FeedPipeline(spec, store, storage_id=sid) for spec, sid in feeds]
    replayed_alone = [per_feed_restore(p) for p in alone]
    assert replayed_alone == [0, 7, 0, 4, 35, 6, 15, 15]  # the cases are what they say
    assert [p.model.seq for p in alone] == [0, 7, 5, 8, 39, 6, 75, 75]
    assert [p.last_dedup_key for p in alone][:6] == [None, "v:6", "v:4", "v:8", "v:39", "v:5"]
    monkeypatch.setattr("oracle.node.pipeline.RESTORE_CHUNK", chunk)
    monkeypatch.setattr("oracle.storage.store._PRUNE_BATCH", batch)
    together = [FeedPipeline(spec, store, storage_id=sid) for spec, sid in feeds]
    assert restore_together(together) == replayed_alone
    assert [state(p) for p in together] == [state(p) for p in alone]
    # and one at a time, FeedPipeline.restore (the batch of one)
    each = [FeedPipeline(spec, store, storage_id=sid) for spec, sid in feeds]
    assert [p.restore() for p in each] == replayed_alone
    assert [state(p) for p in each] == [state(p) for p in alone]
    # reload: dropped buffers, the same state again
    p = each[4]
    feed_values(p, 40, 41)
    p.ingest(RawObservation("median", T0 + 10**6, None, {"value": 1.0}))
    assert p.reload() == 36 and p.pending == 0 and p.model.seq == 40


def test_a_stored_output_that_replays_differently_fails_the_restore_naming_its_feed(
    engine: Engine, tmp_path: Path
) -> None:
    feeds = stored_feeds(engine, tmp_path)
    change_output(engine, "PULL-4/USD", 7, value=1)
    store = Store(engine)
    with pytest.raises(ModelError, match=r"^feed PULL-4/USD: replaying observation 7 gave "):
        restore_together([FeedPipeline(spec, store, storage_id=sid) for spec, sid in feeds])
    with pytest.raises(ModelError, match=r"^feed PULL-4/USD: replaying observation 7 gave "):
        FeedPipeline(feeds[4][0], store).restore()
    arm = f"{storage_id(1, 2)}:{POLICY.outputs[1].id}"
    change_output(engine, arm, 70, value=1)
    with pytest.raises(ModelError, match=rf"^feed {arm}: replaying observation 70 gave "):
        restore_together([FeedPipeline(POLICY, store, storage_id=storage_id(1, 2))])


@pytest.mark.parametrize(
    "blob",
    [b"not a pickle", pickle.dumps({"model": None})],
    ids=["undecodable", "not-a-model-state"],
)
def test_a_corrupt_checkpoint_fails_as_it_does_alone(
    engine: Engine, tmp_path: Path, blob: bytes
) -> None:
    """What loading the blob raises (pickle's error, or ModelError naming the feed) is what
    the restore raises, alone or among other feeds."""
    feeds = stored_feeds(engine, tmp_path)
    with engine.begin() as conn:
        conn.execute(
            update(ModelCheckpoint)
            .where(ModelCheckpoint.feed_id == "PULL-3/USD")
            .values(state=blob)
        )
    store = Store(engine)
    try:
        FeedPipeline(feeds[3][0], store).model.restore(blob)
    except Exception as exc:  # whatever it is, the restore must raise it
        want: BaseException = exc
    else:
        raise AssertionError("the blob loaded")
    for batch in ([feeds[3]], feeds):
        with pytest.raises(type(want)) as got:
            restore_together([FeedPipeline(spec, store, storage_id=sid) for spec, sid in batch])
        assert str(got.value) == str(want)
    if isinstance(want, ModelError):
        assert str(want).startswith("feed PULL-3/USD: checkpoint holds dict")
