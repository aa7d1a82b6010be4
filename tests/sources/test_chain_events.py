"""The chain-events source on a real anvil: confirmation depth, exactly-once ingestion
across restarts and reorgs, bad logs rejected with reasons. Storage on both backends."""

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
from oracle.node.feeds import FeedRunner
from oracle.node.pipeline import FeedMetrics
from oracle.storage import Store
from tests.fixtures.db import Backend

pytestmark = pytest.mark.anvil

SPEC = """
id = "CHAIN/readings"
version = 1
description = "Reading.value of an EventEmitterHarness"
decimals = 4

[[sources]]
name = "emitter"
kind = "chain_events"
rpc_url = "{url}"
address = "{address}"
contract = "EventEmitterHarness"
event = "{event}"
field = "{field}"
scale_decimals = {scale}
confirmations = {confirmations}
max_block_range = 3

[features]
target = "value"

[output]
kind = "value"

[quantize]
rounding = "ROUND_HALF_EVEN"

[publish]
deviation_bps = 0
heartbeat_s = 3600
"""


def write_spec(tmp_path: Path, **values: Any) -> Path:
    fields = {"event": "Reading", "field": "value", "scale": 0, "confirmations": 2, **values}
    text = SPEC
    for key, value in fields.items():
        text = text.replace("{" + key + "}", str(value))
    path = tmp_path / f"chain-{len(list(tmp_path.glob('chain-*.toml')))}.toml"
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


def emit(emitter: Any, w3: Web3, first: int, values: list[int]) -> Any:
    tx = emitter.functions.emitReadings(first, values).transact()
    return w3.eth.wait_for_transaction_receipt(tx)


def mine(w3: Web3, n: int) -> None:
    for _ in range(n):
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def stored(r: FeedRunner) -> list[tuple[int, str | None, float]]:

    return [
        (o.seq, o.dedup_key, o.record["value"])
        for o in r.pipeline.store.observations_after(r.spec.id, 0)
    ]


async def test_only_confirmed_logs_are_ingested_once_each(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any, engine: Engine
) -> None:
    spec = make_spec(tmp_path, anvil, emitter, confirmations=2)
    r = runner(spec, engine)
    receipt = emit(emitter, w3, 0, [10, 20, 30])
    await poll(r)
    assert stored(r) == []  # head = the log's block: 0 confirmations, not 2
    mine(w3, 1)
    await poll(r)
    assert stored(r) == []  # 1 confirmation
    mine(w3, 1)
    await poll(r)
    block_hash = "0x" + bytes(receipt["blockHash"]).hex()
    got = stored(r)
    assert [v for _, _, v in got] == [10.0, 20.0, 30.0]
    assert [k for _, k, _ in got] == [f"{block_hash}:{i}" for i in range(3)]
    # outputs carry the value at the feed's decimals; times strictly increase
    outs = r.pipeline.store.outputs(spec.id)
    assert [o.value for o in outs] == [100_000, 200_000, 300_000]
    assert len({o.observed_at_ms for o in outs}) == 3
    await poll(r)
    mine(w3, 3)
    await poll(r)
    assert len(stored(r)) == 3  # polling again ingests nothing twice
    assert r.status()["chain"]["scanned_to_block"] == w3.eth.block_number - 2


async def test_restart_resumes_without_duplicates_or_gaps(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any, backend: Backend, engine: Engine
) -> None:
    spec = make_spec(tmp_path, anvil, emitter, confirmations=1)
    first = runner(spec, engine)
    for k in range(4):  # more blocks than max_block_range: several getLogs ranges
        emit(emitter, w3, 10 * k, [k, k + 100])
    mine(w3, 1)
    await poll(first)
    assert len(stored(first)) == 8

    # a crash after the scan but before anything was stored: the batch is lost
    emit(emitter, w3, 50, [5, 6])
    mine(w3, 1)
    assert first.chain is not None
    lost = first.chain.scan()
    assert len(lost.logs) == 2
    engine.dispose()
    del first

    again = runner(spec, backend.engine())
    emit(emitter, w3, 60, [7])
    mine(w3, 1)
    await poll(again)
    await poll(again)
    got = stored(again)
    assert [v for _, _, v in got] == [0, 100, 1, 101, 2, 102, 3, 103, 5, 6, 7]
    assert [s for s, _, _ in got] == list(range(1, 12))  # dense: no gap, no duplicate
    assert len({k for _, k, _ in got}) == 11


async def test_a_reorg_within_the_confirmation_depth_never_reaches_the_model(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any, engine: Engine
) -> None:
    spec = make_spec(tmp_path, anvil, emitter, confirmations=3)
    r = runner(spec, engine)
    emit(emitter, w3, 0, [1])
    mine(w3, 3)
    await poll(r)
    assert [v for _, _, v in stored(r)] == [1.0]
    snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    emit(emitter, w3, 1, [666])  # will be orphaned at depth 2 (< 3 confirmations)
    mine(w3, 1)
    await poll(r)
    assert w3.provider.make_request("evm_revert", [snap])["result"]  # type: ignore[arg-type]
    emit(emitter, w3, 1, [2])
    mine(w3, 4)
    await poll(r)
    assert [v for _, _, v in stored(r)] == [1.0, 2.0]
    assert r.reorgs == 0


async def test_a_reorg_deeper_than_the_confirmation_depth_is_detected_and_rescanned(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any, engine: Engine
) -> None:
    spec = make_spec(tmp_path, anvil, emitter, confirmations=1)
    r = runner(spec, engine)
    emit(emitter, w3, 0, [1])
    mine(w3, 1)
    await poll(r)
    snap = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

    # a transaction signed once, so that the replacement chain can re-include it as is
    account = w3.eth.account.from_key(anvil.private_keys[0])
    raw = account.sign_transaction(
        emitter.functions.emitReadings(1, [2, 3]).build_transaction(
            {
                "from": account.address,
                "nonce": w3.eth.get_transaction_count(account.address),
                "gas": 200_000,
                "maxFeePerGas": 10**11,
                "maxPriorityFeePerGas": 1,
                "chainId": w3.eth.chain_id,
            }
        )
    ).raw_transaction
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
    emit(emitter, w3, 3, [4])  # orphaned, never re-included
    mine(w3, 1)
    await poll(r)
    assert [v for _, _, v in stored(r)] == [1.0, 2.0, 3.0, 4.0]

    # the replacement chain: the signed transaction again (other block), a new event, and
    # more blocks than the old chain had
    assert w3.provider.make_request("evm_revert", [snap])["result"]  # type: ignore[arg-type]
    mine(w3, 1)  # shifts the re-included transaction to another block number
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
    emit(emitter, w3, 9, [9])
    mine(w3, 3)
    await poll(r)

    assert r.reorgs == 1
    assert r.orphaned_logs == 3  # 2, 3 and 4 came from orphaned blocks
    # 2 and 3 were re-included (same transaction): not ingested twice; 9 is new
    got = stored(r)
    assert [v for _, _, v in got] == [1.0, 2.0, 3.0, 4.0, 9.0]
    assert len({k for _, k, _ in got}) == 5
    # the source is at the new tip, and the next poll finds nothing new
    await poll(r)
    assert len(stored(r)) == 5
    assert r.status()["chain"]["deep_reorgs"] == 1


async def test_bad_logs_are_rejected_with_reasons_and_the_feed_continues(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any, engine: Engine
) -> None:
    spec = make_spec(tmp_path, anvil, emitter, confirmations=0, scale=2)
    r = runner(spec, engine)
    emit(emitter, w3, 0, [1234])
    emitter.functions.emitMalformedReading(1).transact()
    emit(emitter, w3, 2, [2**255 - 1, -(2**255)])  # absurd magnitudes
    emit(emitter, w3, 4, [-50])
    await poll(r)
    assert [v for _, _, v in stored(r)] == [12.34, -0.5]
    counts = r.pipeline.store.rejection_counts(spec.id)
    assert counts == {"undecodable_log": 1, "out_of_range": 2}
    details = {x.reason: x.detail for x in r.pipeline.store.rejections(spec.id)}
    assert "EventEmitterHarness.Reading" in details["undecodable_log"]
    assert "Reading.value" in details["out_of_range"]
    await poll(r)  # rejected logs are processed once too
    assert sum(r.pipeline.store.rejection_counts(spec.id).values()) == 3


async def test_nested_struct_field(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any, engine: Engine
) -> None:
    spec = make_spec(
        tmp_path, anvil, emitter, event="PointReading", field="point.price", confirmations=0
    )
    r = runner(spec, engine)
    emitter.functions.emitPoint(0, -7, 99).transact()
    emit(emitter, w3, 1, [5])  # another event of the same contract: not matched
    await poll(r)
    assert [v for _, _, v in stored(r)] == [-7.0]


@pytest.mark.parametrize(
    ("values", "key", "expected"),
    [
        ({"event": "Label", "field": "label"}, "field", "expected an integer"),
        ({"event": "Missing"}, "event", "expected an event of EventEmitterHarness"),
        ({"field": "valeu"}, "field", "expected an argument of Reading (seq, value)"),
        ({"field": "value.x"}, "field", "expected an argument of value"),
        ({"confirmations": -1}, "confirmations", "expected an integer in [0, 1000]"),
    ],
)
def test_a_spec_naming_a_wrong_event_or_field_is_refused(
    tmp_path: Path, values: dict[str, Any], key: str, expected: str
) -> None:
    path = write_spec(tmp_path, url="http://127.0.0.1:1", address="0x" + "11" * 20, **values)
    with pytest.raises(ConfigError) as info:
        load_feed_spec(path)
    [problem] = info.value.problems
    assert problem.file == str(path)
    assert problem.key == f"sources[0].{key}"
    assert expected in problem.expected


async def test_a_failed_write_leaves_the_model_as_storage_has_it(
    tmp_path: Path, anvil: Anvil, w3: Web3, emitter: Any, engine: Engine
) -> None:
    spec = make_spec(tmp_path, anvil, emitter, confirmations=0)
    r = runner(spec, engine)
    emit(emitter, w3, 0, [1, 2])
    await poll(r)
    emit(emitter, w3, 2, [3, 4])
    assert r.chain_store is not None
    real = r.chain_store.writer

    def failing(*args: Any, **kwargs: Any) -> Any:
        def write(conn: Any) -> None:
            raise RuntimeError("disk full")

        return write

    r.chain_store.writer = failing  # type: ignore[method-assign]
    await r.poll()
    assert r.last_poll_error is not None and "disk full" in r.last_poll_error
    assert r.pipeline.model.seq == 2  # rebuilt from storage: 3 and 4 were not learned
    r.chain_store.writer = real  # type: ignore[method-assign]
    await poll(r)
    assert [v for _, _, v in stored(r)] == [1.0, 2.0, 3.0, 4.0]
    assert r.pipeline.model.seq == 4
