"""Agreement: two members that see the same approval at different wall times start the
model from the same observation, so their outputs and commitments are bit-identical
(oracle.registry.state, FeedRunner's ``start``)."""

from __future__ import annotations

import asyncio
import time
import tomllib
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from oracle.config.feeds import parse_feed_spec
from oracle.config.reader import Problems
from oracle.node.feeds import FeedRunner
from oracle.node.pipeline import FeedMetrics
from oracle.registry.state import StartPoint, storage_id
from oracle.storage import Store, make_engine, upgrade
from tests.registry.specs import spec_text


def _spec(text: str):  # type: ignore[no-untyped-def]
    problems = Problems()
    spec = parse_feed_spec(tomllib.loads(text), file="t", base_dir=Path("."), problems=problems)
    assert spec is not None, problems.items
    return spec


def _engine(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    return engine


def _runner(engine: Engine, text: str, start: StartPoint, batch: int) -> FeedRunner:
    runner = FeedRunner(
        _spec(text),
        Store(engine),
        FeedMetrics(CollectorRegistry()),
        replay_batch=batch,
        storage_id=storage_id(1, 1),
        start=start,
    )
    runner.restore()
    return runner


def _outputs(runner: FeedRunner) -> dict[int, tuple[object, bytes]]:
    runner.pipeline.flush()
    key = f"{storage_id(1, 1)}:{runner.spec.id}"
    return {o.seq: (o.value, o.commitment) for o in runner.pipeline.store.outputs(key, limit=10**6)}


async def test_members_seeing_the_approval_at_different_times_agree(tmp_path: Path) -> None:
    """A realtime replay (rows released by the wall clock), as a live committee runs it:
    member B loads the approval 1.5 s after member A, with other batch sizes; both start
    at the first row after the approval block's time and agree on every output."""
    now_ms = time.time_ns() // 1_000_000
    text = spec_text(start_ms=now_ms - 400_000, step_ms=1000, realtime=True)
    approval = StartPoint(block=42, time_ms=now_ms - 200_500)  # 200 rows ago, between rows
    a = _runner(_engine(tmp_path / "a.sqlite"), text, approval, batch=7)
    assert a.position == a.start_position == 200
    for _ in range(3):
        await a.poll()
    await asyncio.sleep(1.5)
    b = _runner(_engine(tmp_path / "b.sqlite"), text, approval, batch=1000)
    await b.poll()
    for _ in range(200):  # A catches up in batches of 7
        await a.poll()
        if a.position >= b.position:
            break
    await b.poll()
    out_a, out_b = _outputs(a), _outputs(b)
    common = sorted(set(out_a) & set(out_b))
    assert len(common) >= 195, (len(out_a), len(out_b))
    assert all(out_a[s] == out_b[s] for s in common)
    # the first observation is the first row after the approval, on both
    first_a = next(iter(a.pipeline.store.observations_after(storage_id(1, 1), 0)))
    first_b = next(iter(b.pipeline.store.observations_after(storage_id(1, 1), 0)))
    assert first_a.observed_at_ms == first_b.observed_at_ms == now_ms - 400_000 + 200_000


async def test_a_restarted_member_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """Checkpoint, restart (a new runner on the same database): the model resumes where it
    was and keeps producing exactly the outputs of a member that never stopped."""
    text = spec_text()  # a synthetic clock: every row at once
    approval = StartPoint(block=7, time_ms=1_700_000_000_000 + 300_000)
    steady = _runner(_engine(tmp_path / "steady.sqlite"), text, approval, batch=50)
    engine = _engine(tmp_path / "restarted.sqlite")
    first = _runner(engine, text, approval, batch=50)
    for _ in range(4):
        await steady.poll()
        await first.poll()
    first.pipeline.checkpoint()
    seq = first.pipeline.model.state.seq
    second = _runner(engine, text, approval, batch=50)
    assert second.pipeline.model.state.seq == seq
    assert second.pipeline.model.commitment() == first.pipeline.model.commitment()
    assert second.position == first.position
    for _ in range(4):
        await steady.poll()
        await second.poll()
    ours, theirs = _outputs(second), _outputs(steady)
    assert ours and ours == {s: v for s, v in theirs.items() if s in ours}
    assert set(ours) == set(theirs)


async def test_the_first_output_is_for_the_first_row_learned_from(tmp_path: Path) -> None:
    """The spec's two lags are filled from the two rows before the start point (read, not
    learned): the version's first observation already has an output, so the committee can
    publish it in the round after the approval instead of two rows later."""
    text = spec_text()  # lags = 2
    approval = StartPoint(block=7, time_ms=1_700_000_000_000 + 300_000)
    runner = _runner(_engine(tmp_path / "a.sqlite"), text, approval, batch=1)
    assert runner.start_position == 301
    # the lags are the targets of rows 299 and 300, which the model does not learn from
    model = runner.pipeline.model
    rows = list(runner.replay.read(299, 2))  # type: ignore[union-attr]
    assert list(model.state.last_targets) == [model.target(dict(r.raw)) for r in rows]
    assert model.state.seq == 0
    await runner.poll()
    out = runner.pipeline.last_output
    assert out is not None and out.seq == 1


async def test_a_member_restarted_before_its_first_checkpoint_primes_again(
    tmp_path: Path,
) -> None:
    """No checkpoint yet: the restarted runner fills its lags again from the same rows and
    replays its stored observations to the same outputs and commitments (restore checks
    them against what it stored, and would raise on a difference)."""
    text = spec_text()
    approval = StartPoint(block=7, time_ms=1_700_000_000_000 + 300_000)
    steady = _runner(_engine(tmp_path / "steady.sqlite"), text, approval, batch=20)
    engine = _engine(tmp_path / "restarted.sqlite")
    first = _runner(engine, text, approval, batch=20)
    await first.poll()
    await steady.poll()
    assert min(_outputs(first)) == 1
    second = _runner(engine, text, approval, batch=20)  # first is gone: a restart
    assert second.pipeline.model.commitment() == steady.pipeline.model.commitment()
    await second.poll()
    await steady.poll()
    assert _outputs(second) == _outputs(steady)
