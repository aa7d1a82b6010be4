"""The RL loop's determinism on a real anvil: two members fed the same agent steps at
different arrival timings learn and publish identical policies and commitments, and a
reorg below the confirmation depth never changes what was learned."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from web3 import Web3

from oracle.chain.anvil import Anvil
from oracle.chain.deploy import deploy
from oracle.config import load_feed_spec
from oracle.config.feeds import FeedSpec
from oracle.models import FeedModel
from oracle.node.feeds import FeedRunner
from oracle.node.pipeline import FeedMetrics
from oracle.sources.chain_events import scaled
from oracle.storage import Store, make_engine, upgrade
from tests.models.rl_specs import rl_spec

pytestmark = pytest.mark.anvil

E8 = 10**8
CONFIRMATIONS = 3


def member(spec: FeedSpec, path: Path) -> FeedRunner:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    r = FeedRunner(spec, Store(engine), FeedMetrics(CollectorRegistry()))
    r.restore()
    return r


async def poll(r: FeedRunner) -> None:
    await r.poll()
    assert r.last_poll_error is None, r.last_poll_error


def mine(w3: Web3, n: int) -> None:
    for _ in range(n):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def send_steps(emitter: Any, w3: Web3, rng: random.Random, first: int, n: int) -> list[tuple]:
    """``n`` agent steps in one transaction: arm, reward (arm b pays most), context."""
    arms = [rng.randrange(3) for _ in range(n)]
    rewards = [int((0.2, 0.7, 0.4)[a] * E8) + rng.randrange(-E8 // 10, E8 // 10) for a in arms]
    ctx = [rng.randrange(-E8, E8)]
    tx = emitter.functions.emitSteps(first, arms, rewards, ctx, 7).transact()
    w3.eth.wait_for_transaction_receipt(tx)
    return [(a, scaled(r, 8), scaled(ctx[0], 8)) for a, r in zip(arms, rewards, strict=True)]


def published(r: FeedRunner) -> dict[str, list[tuple[int, int, int, bytes, bool]]]:
    return {
        o.id: [
            (x.seq, x.observed_at_ms, x.value, x.commitment, x.publish)
            for x in r.pipeline.store.outputs(o.id, limit=10**6)
        ]
        for o in r.spec.outputs
    }


@pytest.mark.parametrize("model", ["epsilon_greedy", "contextual"])
async def test_members_agree_whatever_the_arrival_timing_and_a_shallow_reorg_is_never_learned(
    tmp_path: Path, anvil: Anvil, w3: Web3, model: str
) -> None:
    emitter = deploy(w3, "EventEmitterHarness")
    spec = load_feed_spec(
        rl_spec(
            tmp_path, model, url=anvil.url, address=emitter.address, confirmations=CONFIRMATIONS
        )
    )
    eager = member(spec, tmp_path / "eager.sqlite")  # polls after every transaction
    lazy_path = tmp_path / "lazy.sqlite"
    lazy = member(spec, lazy_path)  # polls rarely, and restarts once
    rng = random.Random(11)
    canonical: list[tuple] = []
    step = 1
    for k in range(12):
        n = 1 + k % 3
        canonical += send_steps(emitter, w3, rng, step, n)
        step += n
        await poll(eager)
        if k == 5:
            await poll(lazy)

        if k == 6:
            # a step in a block that a reorg removes while it has fewer confirmations than
            # the depth: both members may see it at the head, neither learns it
            snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
            emitter.functions.emitSteps(999, [0], [9 * E8], [0], 7).transact()
            mine(w3, CONFIRMATIONS - 2)
            await poll(eager)
            await poll(lazy)
            assert w3.provider.make_request("evm_revert", [snap])["result"]  # type: ignore[arg-type]
        if k == 8:
            lazy.pipeline.store.engine.dispose()
            lazy = member(spec, lazy_path)
    mine(w3, CONFIRMATIONS)
    await poll(eager)
    await poll(lazy)

    # every canonical step learned once, in order, by both; the orphaned one by neither
    for r in (eager, lazy):
        assert r.pipeline.model.seq == len(canonical)
        assert r.reorgs == 0
        assert r.pipeline.store.rejection_counts(spec.id) == {}
    got = published(eager)
    assert got == published(lazy)
    assert all(len(v) == len(canonical) for v in got.values())
    # and exactly what a model fed the canonical steps directly publishes
    reference = FeedModel(spec)
    expected = []
    for i, (arm, reward, ctx) in enumerate(canonical):
        out = reference.step({"arm": float(arm), "ctx": ctx, "reward": reward}, i + 1)
        assert out is not None
        expected.append((out.commitment, [a.value for a in out.arms]))
    first = got[spec.outputs[0].id]
    assert expected == [
        (first[i][3], [got[f.id][i][2] for f in spec.outputs]) for i in range(len(canonical))
    ]


async def test_a_step_naming_an_unknown_arm_is_rejected_counted_and_never_learned(
    tmp_path: Path, anvil: Anvil, w3: Web3
) -> None:
    emitter = deploy(w3, "EventEmitterHarness")
    spec = load_feed_spec(
        rl_spec(tmp_path, "contextual", url=anvil.url, address=emitter.address, confirmations=0)
    )
    r = member(spec, tmp_path / "m.sqlite")
    for arms in ([0], [3], [1], [2**64], [2**200]):
        emitter.functions.emitSteps(1, arms, [E8], [0], 7).transact()
    await poll(r)
    assert r.pipeline.model.seq == 2
    counts = r.pipeline.store.rejection_counts(spec.id)
    assert counts == {"unknown_arm": 2, "out_of_range": 1}  # 2**200: absurd before it is an arm
    details = [x.detail for x in r.pipeline.store.rejections(spec.id) if x.reason == "unknown_arm"]
    assert all("expected an index in [0, 2] (a, b, c)" in d for d in details)


def test_the_harness_emits_the_agents_step_event() -> None:
    """The source tests use EventEmitterHarness's Step: it must be IMiraPolicyAgent.Step."""
    from oracle.config.events import resolve_event_fields

    paths = {"arm": "arm", "reward": "reward", "c": "context.0", "r": "policyRound"}
    harness = resolve_event_fields("EventEmitterHarness", "Step", paths)
    for contract in ("GreedyPolicyAgent", "IMiraPolicyAgent"):
        assert resolve_event_fields(contract, "Step", paths) == harness
