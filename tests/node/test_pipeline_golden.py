"""The node pipeline's stored outputs are pinned byte for byte.

Each feed below runs through :class:`FeedPipeline` over a fixed stretch of its replay
data, with a bad observation and a checkpoint on the way; everything the node stores
(observation rows, output rows with their commitments and publish decisions, rejection
rows without their wall-clock time, checkpoint commitments) is hashed, and the digest
compared with the one the code produced before the pipeline's hot path was optimised
(recorded at commit 7171cc2). A restored pipeline must commit to the same state as the
one that ran. Any change to what a node stores, commits to or publishes fails here.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from oracle.bench.pipeline import SPEC as BENCH_SPEC
from oracle.config import FeedSpec, load_feed_spec
from oracle.node.pipeline import FeedPipeline
from oracle.sources.replay import RawObservation, ReplaySource
from oracle.storage import Store
from tests.models.policy_specs import EXAMPLE as POLICY_EXAMPLE

REPO = Path(__file__).resolve().parents[2]

# feed (a file in feeds/, the bench's spec, or the example policy)
# -> (observations run, sha256 of what was stored)
GOLDEN: dict[str, tuple[int, str]] = {
    "bench": (2000, "6861ce9cc88c0655039509587f7c9eb42cb57ca023c69eb2543c672db2e70b8f"),
    "sp500_forecast": (1000, "51e6fc1c7085c973e891f6dd1d1d67d7562bad66c13920c11b957076ea6535a2"),
    "waterflow_anomaly": (600, "57d418b0fa0703cd1674e2bf325687534fe6d25b6183d334856e65d4a5c5ed6c"),
    "airline_holtwinters": (
        144,
        "6f7f750d6ebd61970f573784027515f14b9cf651e36c1036e95f59d018b5cee8",
    ),
    "policy": (500, "1a04686f79be8d1fd607f4e85daefb3cbf4798c93e85a73a007443729e27d151"),
}


def _spec(name: str, tmp_path: Path) -> FeedSpec:
    if name == "bench":
        path = tmp_path / "bench.toml"
        path.write_text(BENCH_SPEC.replace("{n}", "0").replace("{passes}", "3"))
        return load_feed_spec(path)
    if name == "policy":
        return load_feed_spec(POLICY_EXAMPLE)
    return load_feed_spec(REPO / "feeds" / f"{name}.toml")


def _plain(value: object) -> object:
    """A column value as SQLite's driver returns it, whatever the database: PostgreSQL's
    gives booleans for booleans, memoryview for bytes, Decimal for numerics."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _record_values(record: dict[str, float]) -> str:
    """A stored record by its values: the keys in their stored order and every float
    exactly, in the spelling the pinned digests were made with (``json.dumps``, i.e.
    ``float.__repr__``). A record is JSON read back into floats (oracle.storage.records);
    how a float is spelled there (``1e-05`` or ``0.00001``) is not what nodes store and
    agree on, its value is. That the stored JSON is compact and canonical is
    tests/storage/test_records.py's."""
    return json.dumps(record, separators=(",", ":"))


def _stored(engine: Engine, feed_ids: list[str]) -> bytes:
    """Every entry the pipeline wrote, in a fixed order, as bytes (wall-clock times and
    pickled checkpoint bytes left out: they are not part of what nodes agree on; a
    record by its values, see :func:`_record_values`). Observations and outputs are read
    back entry by entry through the store (they are stored in runs: oracle.storage.runs),
    each as the row of the per-entry tables the digests were first made of; the labels
    hashed before them are those tables' queries, so that the digests stay comparable."""
    store = Store(engine)
    observations = [o for f in feed_ids for o in store.observations_after(f, -1)]
    outputs = [o for f in feed_ids for o in store.outputs(f, limit=10**9)]
    entries = {
        "SELECT feed_id, seq, source, observed_at_ms, dedup_key, record FROM observations"
        " ORDER BY feed_id, seq": sorted((*o[:5], _record_values(o.record)) for o in observations),
        "SELECT feed_id, seq, observed_at_ms, value, raw_value, commitment, publish"
        " FROM outputs ORDER BY feed_id, seq": sorted(
            (*o[:3], str(o.value), o.raw_value, o.commitment, int(o.publish)) for o in outputs
        ),
    }
    queries = [
        "SELECT feed_id, source, reason, detail, raw FROM rejected_observations ORDER BY id",
        "SELECT feed_id, seq, spec_digest, commitment FROM model_checkpoints ORDER BY feed_id, seq",
    ]
    h = hashlib.sha256()
    for label, rows in entries.items():
        h.update(label.encode() + b"\x00")
        for row in rows:
            h.update(repr(tuple(row)).encode() + b"\n")
    with engine.connect() as conn:
        for q in queries:
            h.update(q.encode() + b"\x00")
            for row in conn.execute(text(q)):
                h.update(repr(tuple(_plain(v) for v in row)).encode() + b"\n")
    return h.digest()


# Batch sizes a replay poll may hand the pipeline (FeedPipeline.ingest_many), cycled: one
# observation, a few, many; each batch's observations are begun, then finished together
# (FeedModel.begin/finish), which must store exactly what one at a time stores.
_BATCHES = (1, 7, 64, 2, 250, 33)


@pytest.mark.parametrize("batched", [False, True], ids=["one_by_one", "in_batches"])
@pytest.mark.parametrize("name", list(GOLDEN))
def test_stored_outputs_and_commitments_are_unchanged(
    name: str, batched: bool, engine: Engine, tmp_path: Path
) -> None:
    n, expected = GOLDEN[name]
    spec = _spec(name, tmp_path)
    store = Store(engine)
    pipe = FeedPipeline(spec, store)
    rows = list(ReplaySource(spec.sources[0]).read(0, n))  # type: ignore[arg-type]
    stream: list[RawObservation | str] = []  # the observations, and when to flush/checkpoint
    for i, obs in enumerate(rows):
        stream.append(obs)
        if i == n // 3:
            # a bad observation: rejected and stored, nothing else changes
            bad = {**obs.raw, spec.features.record_fields[0]: float("nan")}
            stream.append(RawObservation(obs.source, obs.observed_at_ms + 1, "bad", bad))
        if i % 97 == 96:
            stream.append("flush")
        if i == n // 2:
            stream.append("checkpoint")
    sizes = iter(_BATCHES * n)
    batch: list[RawObservation] = []
    for item in [*stream, "end"]:
        if isinstance(item, RawObservation):
            batch.append(item)
            if batched and len(batch) < next(sizes):
                continue
        if batch:
            pipe.ingest_many(batch)
            batch = []
        if item == "flush":
            pipe.flush()
        elif item == "checkpoint":
            pipe.checkpoint()
    pipe.flush()  # no checkpoint at the end: a restart re-runs the second half
    digest = _stored(engine, sorted({pipe.storage_id, *pipe.output_ids})).hex()

    # a node restarted from storage holds the state of the one that ran
    restarted = FeedPipeline(spec, Store(engine))
    restarted.restore()
    assert restarted.model.commitment() == pipe.model.commitment()
    assert restarted.model.seq == pipe.model.seq
    assert digest == expected, f"{name}: stored rows changed ({digest})"
