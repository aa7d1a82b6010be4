"""The chain-events source mapping one event's several fields to one record (an RL agent's
step: arm, reward, context), on a real anvil: canonical (block, log index) order, exactly
once after the confirmation depth, bad logs rejected and counted, never learned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from web3 import Web3

from oracle.chain.anvil import Anvil
from oracle.chain.deploy import deploy
from oracle.config import ConfigError, load_feed_spec
from oracle.config.feeds import FeedSpec
from oracle.errors import Rejected
from oracle.node.feeds import FeedRunner
from oracle.node.pipeline import FeedMetrics
from oracle.sources.chain_events import ChainEventSource
from oracle.storage import Store

pytestmark = pytest.mark.anvil

SPEC = """
id = "CHAIN/steps"
version = 1
description = "an agent's steps: reward against arm and context"
decimals = 8

[[sources]]
name = "agent"
kind = "chain_events"
rpc_url = "{url}"
address = "{address}"
contract = "EventEmitterHarness"
event = "Step"
scale_decimals = 8
confirmations = {confirmations}
max_block_range = 3
{extra}

[sources.fields]
{fields}

[sources.decimals]
{decimals}

[features]
fields = ["arm", "c0"]
target = "reward"

[[model.steps]]
class = "linear_model.LinearRegression"

[output]
kind = "forecast"
horizon = 0

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 0
heartbeat_s = 3600
"""

FIELDS = 'arm = "arm"\nreward = "reward"\nc0 = "context.0"\nround = "policyRound"'
LIMITS = "[sources.limits]\nreward = [-1.0, 1.0]\narm = [0, 4]"


def write_spec(tmp_path: Path, **values: Any) -> Path:
    fields = {"confirmations": 2, "fields": FIELDS, "extra": "", "decimals": "arm = 0", **values}
    text = SPEC
    for key, value in fields.items():
        text = text.replace("{" + key + "}", str(value))
    path = tmp_path / f"steps-{len(list(tmp_path.glob('steps-*.toml')))}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def emitter(w3: Web3) -> Any:
    return deploy(w3, "EventEmitterHarness")


def make_spec(tmp_path: Path, anvil: Anvil, emitter: Any, **values: Any) -> FeedSpec:
    return load_feed_spec(write_spec(tmp_path, url=anvil.url, address=emitter.address, **values))


def runner(spec: FeedSpec, engine: Engine) -> FeedRunner:
    r = FeedRunner(spec, Store(engine), FeedMetrics(CollectorRegistry()))
    r.restore()
    return r


async def poll(r: FeedRunner) -> None:
    await r.poll()
    assert r.last_poll_error is None, r.last_poll_error


def steps(
    emitter: Any, w3: Web3, first: int, arms: list[int], rewards: list[int], ctx: list[int]
) -> Any:
    tx = emitter.functions.emitSteps(first, arms, rewards, ctx, 7).transact()
    return w3.eth.wait_for_transaction_receipt(tx)


def mine(w3: Web3, n: int) -> None:
    for _ in range(n):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def stored(r: FeedRunner) -> list[dict[str, float]]:
    return [o.record for o in r.pipeline.store.observations_after(r.spec.id, 0)]


E8 = 10**8


async def test_one_log_becomes_one_record_of_several_fields_once_confirmed(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any, engine: Engine
) -> None:
    spec = make_spec(tmp_path, anvil, emitter, confirmations=2)
    src = spec.sources[0]
    assert [name for name, _ in src.fields] == ["arm", "c0", "reward", "round"]  # type: ignore[union-attr]
    r = runner(spec, engine)
    steps(emitter, w3, 1, [0, 2], [E8, 0], [3 * E8 // 2])
    await poll(r)
    assert stored(r) == []  # not yet confirmed
    mine(w3, 2)
    await poll(r)
    # the model's record: its features and target (the source's extra field is not kept)
    assert stored(r) == [
        {"arm": 0.0, "c0": 1.5, "reward": 1.0},
        {"arm": 2.0, "c0": 1.5, "reward": 0.0},
    ]
    mine(w3, 3)
    await poll(r)
    assert len(stored(r)) == 2  # exactly once


async def test_logs_of_one_block_are_learned_in_log_index_order(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any, engine: Engine
) -> None:
    spec = make_spec(tmp_path, anvil, emitter, confirmations=1)
    r = runner(spec, engine)
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        hashes = [
            emitter.functions.emitSteps(k, [k], [k * E8], [k], 7).transact({"gas": 200_000})
            for k in (1, 2, 3)
        ]
        mine(w3, 1)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    receipts = [w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    assert len({rc["blockNumber"] for rc in receipts}) == 1
    mine(w3, 1)
    await poll(r)
    assert [rec["reward"] for rec in stored(r)] == [1.0, 2.0, 3.0]
    keys = [o.dedup_key for o in r.pipeline.store.observations_after(spec.id, 0)]
    block_hash = "0x" + bytes(receipts[0]["blockHash"]).hex()
    assert keys == [f"{block_hash}:{rc['logs'][0]['logIndex']}" for rc in receipts]


async def test_absurd_values_and_missing_fields_are_rejected_counted_never_learned(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any, engine: Engine
) -> None:
    spec = make_spec(tmp_path, anvil, emitter, confirmations=0, extra=LIMITS)
    r = runner(spec, engine)
    steps(emitter, w3, 1, [1], [E8 // 2], [1])  # fine
    steps(emitter, w3, 2, [1], [5 * E8], [1])  # a reward of 5: outside [-1, 1]
    steps(emitter, w3, 3, [9], [0], [1])  # an arm index above the limit
    steps(emitter, w3, 4, [1], [-(2**255)], [1])  # absurd magnitude
    steps(emitter, w3, 5, [1], [0], [])  # no context: the path context.0 is missing
    steps(emitter, w3, 6, [0], [-E8], [2])  # fine
    await poll(r)
    assert [(rec["arm"], rec["reward"]) for rec in stored(r)] == [(1.0, 0.5), (0.0, -1.0)]
    assert r.pipeline.model.seq == 2  # only those were learned
    counts = r.pipeline.store.rejection_counts(spec.id)
    assert counts == {"out_of_range": 3, "missing_field": 1}
    details = sorted(x.detail for x in r.pipeline.store.rejections(spec.id))
    assert any("Step.reward = 5.0 is outside its limits [-1.0, 1.0]" in d for d in details)
    assert any("Step.arm = 9.0 is outside its limits" in d for d in details)
    await poll(r)
    assert sum(r.pipeline.store.rejection_counts(spec.id).values()) == 4  # counted once


def test_a_log_of_another_contract_is_rejected(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any
) -> None:
    """An RPC node is not trusted to filter by address: a log it returns from another
    contract (same event, same topic) is refused."""
    spec = make_spec(tmp_path, anvil, emitter, confirmations=0)
    other = deploy(w3, "EventEmitterHarness")
    receipt = steps(other, w3, 1, [0], [E8], [1])
    [lg] = receipt["logs"]
    source = ChainEventSource(spec.sources[0], w3)  # type: ignore[arg-type]
    with pytest.raises(Rejected) as info:
        source.decode_record(lg)
    assert info.value.reason == "wrong_contract"
    assert other.address in info.value.detail
    [own] = steps(emitter, w3, 1, [0], [E8], [1])["logs"]
    assert source.decode_record(own) == {"arm": 0.0, "c0": 1e-08, "reward": 1.0, "round": 7e-08}


@pytest.mark.parametrize(
    ("values", "key", "expected"),
    [
        ({"fields": 'arm = "arm"\nc0 = "context"'}, "fields.c0", "expected an element index"),
        ({"fields": 'arm = "arm"\nc0 = "context.x"'}, "fields.c0", "expected an element index"),
        ({"fields": 'arm = "arms"'}, "fields.arm", "expected an argument of Step"),
        ({"extra": 'field = "arm"'}, "field", "expected either field or [fields]"),
        (
            {"extra": "[sources.limits]\nprice = [0, 1]"},
            "limits.price",
            "expected one of the source's fields",
        ),
        ({"extra": "[sources.limits]\narm = [1, 0]"}, "limits.arm", "low <= high"),
        ({"decimals": "price = 2"}, "decimals.price", "expected one of"),
    ],
)
def test_a_spec_naming_a_wrong_field_path_or_limit_is_refused(
    tmp_path: Path, values: dict[str, Any], key: str, expected: str
) -> None:
    path = write_spec(tmp_path, url="http://127.0.0.1:1", address="0x" + "11" * 20, **values)
    with pytest.raises(ConfigError) as info:
        load_feed_spec(path)
    problems = [p for p in info.value.problems if p.key == f"sources[0].{key}"]
    assert problems, info.value.problems
    assert expected in problems[0].expected
