"""A policy feed through the node: per-arm outputs stored, restored, and offered to the
reporting rounds as one feed update per arm."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from oracle.config import feed_id_bytes32, load_feed_spec
from oracle.models import FeedModel, ModelError
from oracle.node.feeds import FeedRunner
from oracle.node.network import NodeOutputs
from oracle.node.pipeline import FeedMetrics, FeedPipeline
from oracle.sources.replay import RawObservation, ReplaySource
from oracle.storage import Store
from tests.fixtures.db import Backend
from tests.harness.stored_runs import change_output
from tests.models.policy_specs import EXAMPLE

SPEC = load_feed_spec(EXAMPLE)
ARM_IDS = [f"SP500/bandit/{arm}" for arm in SPEC.arms]


def run(pipe: FeedPipeline, start: int, stop: int, flush_every: int = 100) -> None:
    src = ReplaySource(SPEC.sources[0])  # type: ignore[arg-type]
    for i, obs in enumerate(src.read(start, stop - start)):
        pipe.ingest(obs)
        if i % flush_every == flush_every - 1:
            pipe.flush()
    pipe.flush()


def uninterrupted(n: int) -> dict[str, list[tuple[int, int, bytes, bool]]]:
    """Per arm feed id: the outputs of an in-memory run with no storage, no restart."""
    model = FeedModel(SPEC)
    fields = SPEC.features.record_fields
    out: dict[str, list[tuple[int, int, bytes, bool]]] = {a: [] for a in ARM_IDS}
    for obs in ReplaySource(SPEC.sources[0]).read(0, n):  # type: ignore[arg-type]
        o = model.step({k: float(obs.raw[k]) for k in fields}, obs.observed_at_ms)
        assert o is not None
        for feed, arm in zip(ARM_IDS, o.arms, strict=True):
            out[feed].append((o.seq, arm.value, o.commitment, arm.publish))
    return out


def stored(store: Store) -> dict[str, list[tuple[int, int, bytes, bool]]]:
    return {
        feed: [(o.seq, o.value, o.commitment, o.publish) for o in store.outputs(feed, limit=10**6)]
        for feed in ARM_IDS
    }


def test_each_arm_is_stored_and_a_restart_gives_the_uninterrupted_outputs(
    backend: Backend, engine: Engine
) -> None:
    first = FeedPipeline(SPEC, Store(engine))
    run(first, 0, 250)
    first.checkpoint()
    run(first, 250, 330)  # stored after the checkpoint: re-run on restore
    engine.dispose()
    del first

    restarted = FeedPipeline(SPEC, Store(backend.engine()))
    assert restarted.restore() == 80
    assert restarted.model.seq == 330
    run(restarted, 330, 600)
    got = stored(restarted.store)
    assert got == uninterrupted(600)
    assert restarted.store.outputs(SPEC.id) == []  # only the arms are feeds
    assert restarted.store.count_observations(SPEC.id) == 600


def test_restore_notices_a_stored_arm_output_that_replays_differently(engine: Engine) -> None:
    first = FeedPipeline(SPEC, Store(engine))
    run(first, 0, 40)
    change_output(engine, ARM_IDS[2], 30, value=12345)
    again = FeedPipeline(SPEC, Store(engine))
    with pytest.raises(ModelError, match=r"feed SP500/bandit/JPM: replaying observation 30"):
        again.restore()


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"KO": math.nan}, "nan"),
        ({"KO": math.inf}, "infinite"),
        ({"KO": -math.inf}, "infinite"),
        ({"KO": "up"}, "not_a_number"),
        ({"KO": None}, "missing_field"),
    ],
)
def test_bad_reward_is_rejected_stored_and_the_feed_continues(
    engine: Engine, patch: dict[str, object], reason: str
) -> None:
    store = Store(engine)
    pipe = FeedPipeline(SPEC, store)
    run(pipe, 0, 20)
    before = stored(store)
    good = next(ReplaySource(SPEC.sources[0]).read(20, 1))  # type: ignore[arg-type]
    raw = {**good.raw, **patch}
    if patch["KO"] is None:
        del raw["KO"]
    pipe.ingest(RawObservation("sp500", good.observed_at_ms, "bad", raw))
    pipe.flush()
    assert store.rejection_counts(SPEC.id) == {reason: 1}
    [rej] = store.rejections(SPEC.id)
    assert "KO" in rej.detail
    assert stored(store) == before
    run(pipe, 20, 30)
    after = stored(store)
    assert all(len(after[f]) == len(before[f]) + 10 for f in ARM_IDS)
    assert after == uninterrupted(30)  # the bad row changed nothing


def test_the_rounds_see_one_update_per_arm(engine: Engine) -> None:
    runner = FeedRunner(SPEC, Store(engine), FeedMetrics(CollectorRegistry()))
    assert runner.latest_updates() == []
    assert NodeOutputs({SPEC.id: runner}, runner.pipeline.store.engine).latest_outputs() == {}
    run(runner.pipeline, 0, 50)
    last = runner.pipeline.last_output
    assert last is not None and len(last.arms) == 5
    updates = runner.latest_updates()
    assert [u.feed_id for u in updates] == [feed_id_bytes32(f) for f in ARM_IDS]
    assert [u.value for u in updates] == [a.value for a in last.arms]
    assert {u.model_commitment for u in updates} == {last.commitment}
    assert {u.observed_at for u in updates} == {last.observed_at_ms // 1000}
    outputs = NodeOutputs({SPEC.id: runner}, runner.pipeline.store.engine).latest_outputs()
    assert outputs == {u.feed_id: u for u in updates}
    assert SPEC.id_bytes32 not in outputs  # the policy feed itself is not published

    status = runner.status()
    assert [a["feed"] for a in status["arms"]] == ARM_IDS
    assert [a["value"] for a in status["latest"]["arms"]] == [str(a.value) for a in last.arms]
    assert status["latest"]["arms"][0]["feed_id_bytes32"] == "0x" + updates[0].feed_id.hex()
    assert status["metrics"]["last_pulled"] in SPEC.arms
    assert sum(status["metrics"]["pulls"].values()) == 50


def test_the_rounds_find_an_earlier_output_by_its_observation_time(engine: Engine) -> None:
    """A follower checks a proposal against its own output for the proposal's observation
    second: the last RECENT_OUTPUTS outputs are kept, also after a restore."""
    from oracle.node.pipeline import RECENT_OUTPUTS

    runner = FeedRunner(SPEC, Store(engine), FeedMetrics(CollectorRegistry()))
    seen = []
    for obs in ReplaySource(SPEC.sources[0]).read(0, 50):  # type: ignore[arg-type]
        runner.pipeline.ingest(obs)
        seen.append(runner.latest_updates())
    runner.pipeline.flush()
    outputs = NodeOutputs({SPEC.id: runner}, runner.pipeline.store.engine)
    arm = feed_id_bytes32(ARM_IDS[2])
    earlier = seen[-10][2]  # ten rows back: the latest output has moved on
    assert earlier.feed_id == arm and earlier != outputs.latest_outputs()[arm]
    assert outputs.output_at(arm, earlier.observed_at) == earlier
    too_old = seen[-RECENT_OUTPUTS - 1][2]
    assert outputs.output_at(arm, too_old.observed_at) is None
    assert outputs.output_at(arm, 12345) is None
    assert outputs.output_at(SPEC.id_bytes32, earlier.observed_at) is None  # not published

    restarted = FeedRunner(SPEC, Store(engine), FeedMetrics(CollectorRegistry()))
    restarted.pipeline.restore()
    again = NodeOutputs({SPEC.id: restarted}, restarted.pipeline.store.engine)
    assert again.output_at(arm, earlier.observed_at) == earlier
