"""An observation's stored record (oracle.storage.records): the floats the model saw come
back bit for bit, whichever way the row was spelled, and a restart re-runs rows written
by earlier versions (``json.dumps``) to the same outputs and commitments."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from oracle.bench.pipeline import SPEC as BENCH_SPEC
from oracle.config import load_feed_spec
from oracle.node.pipeline import FeedPipeline
from oracle.sources.replay import RawObservation, ReplaySource
from oracle.sources.validate import MAX_ABS
from oracle.storage import ObservationRow, Store, decode_record, encode_record
from oracle.storage.runs import observation_runs, read_observations

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-MAX_ABS, max_value=MAX_ABS)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)


def _bits(record: dict[str, float]) -> list[tuple[str, bytes]]:
    """A record as its keys in order and each float's IEEE-754 bytes (so 0.0 != -0.0)."""
    return [(k, struct.pack(">d", v)) for k, v in record.items()]


@given(st.dictionaries(names, finite, min_size=1, max_size=16))
def test_a_record_reads_back_as_the_same_floats_in_the_same_order(
    values: dict[str, float],
) -> None:
    record = dict(sorted(values.items()))  # as the pipeline builds it: the spec's sorted fields
    stored = encode_record(record)
    assert _bits(decode_record(stored)) == _bits(record)
    assert _bits(json.loads(stored)) == _bits(record)  # plain JSON: any reader gets them
    # canonical: compact, keys in order, one spelling per record
    assert stored == encode_record(decode_record(stored))
    assert " " not in stored and "\n" not in stored
    assert list(json.loads(stored)) == sorted(record)


@given(st.lists(st.dictionaries(names, finite, min_size=1, max_size=16), min_size=1, max_size=5))
def test_records_stored_in_a_run_read_back_as_the_same_floats_in_the_same_order(
    values: list[dict[str, float]],
) -> None:
    """As the store keeps them: each record a JSON object in its run's body."""
    records = [dict(sorted(v.items())) for v in values]
    rows = [ObservationRow("f", i + 1, "src", i, None, r) for i, r in enumerate(records)]
    (run,) = observation_runs(rows)
    back = read_observations("f", run.body)
    assert [_bits(o.record) for o in back] == [_bits(r) for r in records]
    # each record spelled in the body as encode_record spells it alone
    assert [encode_record(r) for r in records] == [
        orjson.dumps(e[4]).decode() for e in orjson.loads(run.body)
    ]
    assert all(encode_record(r) in run.body for r in records)


@given(st.dictionaries(names, finite, min_size=1, max_size=16))
def test_a_record_written_by_json_dumps_reads_back_the_same(values: dict[str, float]) -> None:
    """Rows stored before records were written with orjson: ``json.dumps(sort_keys=True)``."""
    old = json.dumps(values, sort_keys=True, separators=(",", ":"))
    assert _bits(decode_record(old)) == _bits(dict(sorted(values.items())))


@pytest.mark.parametrize(
    "value", [1e-05, 1e-07, 1e16, 1e22, -0.0, 5e-324, 2.2250738585072014e-308, 0.1, 1 / 3]
)
def test_spellings_that_differ_from_pythons_read_back_exactly(value: float) -> None:
    stored = encode_record({"x": value})
    back = decode_record(stored)["x"]
    assert struct.pack(">d", back) == struct.pack(">d", value), stored
    assert math.copysign(1.0, back) == math.copysign(1.0, value)


@pytest.mark.parametrize("stored", ["[1.0]", "1.5", '"x"', "null"])
def test_a_stored_record_that_is_not_an_object_is_refused(stored: str) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        decode_record(stored)


def test_rows_written_the_old_way_restore_to_the_same_outputs(
    engine: Engine, tmp_path: Path
) -> None:
    """A node upgraded over a database written with ``json.dumps`` records: its restart
    re-runs those rows (checking each output against the stored one, ModelError if not)
    and ends in the state of the node that wrote them. The data scaled down so that its
    floats are ones the two spell differently (``1.5e-06`` against ``0.0000015``)."""
    path = tmp_path / "bench.toml"
    path.write_text(BENCH_SPEC.replace("{n}", "0").replace("{passes}", "1"))
    spec = load_feed_spec(path)
    source = ReplaySource(spec.sources[0])  # type: ignore[arg-type]
    tiny = [
        RawObservation(
            o.source,
            o.observed_at_ms,
            o.dedup_key,
            {k: v * 1e-4 for k, v in o.raw.items() if isinstance(v, float)},
        )
        for o in source.read(0, 600)
    ]
    pipe = FeedPipeline(spec, Store(engine))
    for i, obs in enumerate(tiny):
        pipe.ingest(obs)
        if i % 7 == 6:
            pipe.flush()
        if i == 299:
            pipe.checkpoint()  # the 300 rows after it are re-run on restart
    pipe.flush()
    assert pipe.model.seq == 600
    with engine.begin() as conn:
        runs = conn.execute(text("SELECT id, body FROM observation_runs")).all()
        respelled = 0
        for run_id, body in runs:
            # the run's records (and the rest of it) spelled by json.dumps, float.__repr__
            old = json.dumps(json.loads(body), separators=(",", ":"))
            respelled += sum(
                json.dumps(e[4], separators=(",", ":")) != orjson.dumps(e[4]).decode()
                for e in json.loads(body)
            )
            conn.execute(
                text("UPDATE observation_runs SET body = :b WHERE id = :i"),
                {"b": old, "i": run_id},
            )
        assert respelled > 100  # spelled differently: the point here
    restarted = FeedPipeline(spec, Store(engine))
    assert restarted.restore() == 300
    assert restarted.model.commitment() == pipe.model.commitment()
    assert restarted.last_output == pipe.last_output
