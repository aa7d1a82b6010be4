"""``mira bench pipeline``'s stored minimum does what the pipeline stores for every
observation, byte for byte where it is the same work (the figures themselves are the
benchmark's to report, not this test's to assert)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from oracle.bench.pipeline import _spec, _stored_minimum
from oracle.models.commitment import commitment
from oracle.node.pipeline import FeedPipeline
from oracle.sources.replay import ReplaySource
from oracle.storage import Store


def test_the_stored_minimum_stores_the_pipelines_records_and_commitments(
    engine: Engine, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, 0, passes=1)
    store = Store(engine)
    rows = list(ReplaySource(spec.sources[0]).read(0, 300))  # type: ignore[arg-type]
    records = [
        ({k: float(o.raw[k]) for k in spec.features.fields}, float(o.raw["y"])) for o in rows
    ]
    assert _stored_minimum(spec, store, records, batch=128) > 0
    pipe = FeedPipeline(spec, store)
    for obs in rows:
        pipe.ingest(obs)
    pipe.flush()
    minimum = spec.id + "/stored-minimum"
    # the same record (its keys in the same order) for every observation, and the same
    # commitment for every output: the pipeline's first output is for the second
    # observation (horizon 1)
    assert [list(o.record.items()) for o in store.observations_after(minimum, 0)] == [
        list(o.record.items()) for o in store.observations_after(spec.id, 0)
    ]
    got = {o.seq: o.commitment for o in store.outputs(minimum, limit=1000)}
    want = {o.seq: o.commitment for o in store.outputs(spec.id, limit=1000)}
    assert len(got) == 300 and want and all(got[seq] == c for seq, c in want.items())
    assert got[1] != commitment(spec.digest, None)
