from __future__ import annotations

import pytest
from sqlalchemy import Engine

from oracle.storage import (
    CheckpointRow,
    ObservationRow,
    OutputRow,
    RejectionRow,
    RunOverlap,
    Store,
)
from oracle.storage.runs import RUN_MAX

INT128_MAX = 2**127 - 1
INT128_MIN = -(2**127)


def obs(seq: int, feed: str = "f", dedup: str | None = None) -> ObservationRow:
    return ObservationRow(feed, seq, "src", 1_700_000_000_000 + seq, dedup, {"y": seq / 7})


def out(seq: int, value: int, feed: str = "f", publish: bool = False) -> OutputRow:
    return OutputRow(
        feed, seq, 1_700_000_000_000 + seq, value, float(seq) / 3, bytes([seq % 256]) * 32, publish
    )


def test_batch_roundtrip_keeps_int128_and_float_exact(engine: Engine) -> None:
    store = Store(engine)
    store.write_batch(
        [obs(1), obs(2)],
        [out(1, INT128_MAX), out(2, INT128_MIN, publish=True)],
        [RejectionRow("f", "src", 1, "nan", "value is NaN", "NaN")],
    )
    assert store.latest_output("f") == out(2, INT128_MIN, publish=True)
    assert store.outputs("f")[0] == out(1, INT128_MAX)
    assert store.outputs("f")[0].raw_value == 1 / 3
    assert store.latest_output("f", published=True) == out(2, INT128_MIN, publish=True)
    assert store.last_observation("f") == obs(2)
    assert store.rejection_counts("f") == {"nan": 1}
    assert store.count_observations("f") == 2
    assert store.latest_output("other") is None


def test_failed_batch_stores_nothing_and_loses_nothing(engine: Engine) -> None:
    store = Store(engine)
    store.write_batch([obs(1)], [out(1, 10)])
    with pytest.raises(RunOverlap, match="do not increase"):
        # seq 2 is new but seq 1 repeats: the whole batch must roll back
        store.write_batch([obs(2), obs(1)], [out(2, 20)])
    with pytest.raises(RunOverlap, match="stored already"):
        # new observations, but an output seq stored already: nothing of it is stored
        store.write_batch([obs(2), obs(3)], [out(1, 99)])
    assert [o.seq for o in store.observations_after("f", 0)] == [1]
    assert store.latest_output("f") == out(1, 10)


@pytest.mark.parametrize("seqs", [[3, 4, 5], [2, 3, 4], [1, 2], [2], [0, 6], [3]])
def test_a_run_overlapping_what_its_feed_has_stored_is_refused(
    engine: Engine, seqs: list[int]
) -> None:
    """Each seq of a feed is stored once: a write whose run reaches back to a seq at or
    below the feed's newest stored one is refused whole, whatever the overlap (its
    first seq, its last or one inside), and what was stored stays; another feed's same
    seqs are its own."""
    store = Store(engine)
    store.write_batch([obs(1), obs(2), obs(3)])
    with pytest.raises(RunOverlap, match="observation_runs: a run of f from seq"):
        store.write_batch([obs(s, feed="g") for s in seqs] + [obs(s) for s in seqs])
    assert [o.seq for o in store.observations_after("f", 0)] == [1, 2, 3]
    assert store.last_observation("g") is None
    store.write_batch([obs(4), obs(5)])
    assert [o.seq for o in store.observations_after("f", 0)] == [1, 2, 3, 4, 5]


def test_a_store_learns_its_feeds_newest_seqs_and_a_refused_write_moves_none(
    engine: Engine,
) -> None:
    """A store that has not written a feed yet (a restarted node) learns what it holds
    from the database; a write refused whole (here by its outputs) leaves the newest seqs
    where they were, so the same observations can be written next."""
    Store(engine).write_batch([obs(1), obs(2)], [out(2, 20)])
    fresh = Store(engine)
    with pytest.raises(RunOverlap, match="from seq 2 reaches back to seq 2"):
        fresh.write_batch([obs(2), obs(3)])
    with pytest.raises(RunOverlap, match="output_runs"):
        fresh.write_batch([obs(3)], [out(2, 21)])
    fresh.write_batch([obs(3)], [out(3, 30)])
    assert [o.seq for o in fresh.observations_after("f", 0)] == [1, 2, 3]
    assert [o.value for o in fresh.outputs("f")] == [20, 30]


def test_each_entry_keeps_its_source_key_and_a_run_is_read_back_entry_by_entry(
    engine: Engine,
) -> None:
    """A source's exactly-once key is stored with its entry (a replay resumes after its
    feed's newest: Store.last_dedup_keys); it is the sources' own bookkeeping that rules
    out a key ingested twice (tests/sources/test_chain_events.py), not an index here."""
    store = Store(engine)
    store.write_batch([obs(1, dedup="0xabc:0"), obs(2), obs(3, dedup="0xabc:2")])
    store.write_batch([obs(1, feed="g", dedup="0xabc:0")])
    assert [o.dedup_key for o in store.observations_after("f", 0)] == ["0xabc:0", None, "0xabc:2"]
    assert store.last_dedup_keys(["f", "g", "h"]) == {"f": "0xabc:2", "g": "0xabc:0"}
    assert store.last_observation("f") == obs(3, dedup="0xabc:2")


def test_reads_cut_across_runs_give_each_entry_once_in_order(engine: Engine) -> None:
    """Writes of different sizes (runs of 1, 5 and more than RUN_MAX entries, cut into
    several) read back entry by entry whatever the page, the bound or the direction."""
    store = Store(engine)
    sizes = [1, 5, RUN_MAX + 3, 1, 2, 40]
    seq = 0
    for n in sizes:
        store.write_batch(
            [obs(s) for s in range(seq + 1, seq + n + 1)],
            [out(s, s * 10, publish=s % 17 == 0) for s in range(seq + 1, seq + n + 1)],
        )
        seq += n
    every = list(range(1, seq + 1))
    assert store.count_observations("f") == seq
    for page in (1, 2, 625):
        assert [o.seq for o in store.observations_after("f", 0, page=page)] == every
        assert [o.seq for o in store.observations_after("f", 7, page=page)] == every[7:]
    assert [o.seq for o in store.outputs("f", after_seq=3, limit=4)] == [4, 5, 6, 7]
    assert [o.seq for o in store.outputs("f", after_seq=-1, limit=10**6)] == every
    for before in (None, seq + 5, seq, 140, 7, 1):
        below = [s for s in every if before is None or s < before]
        for limit in (1, 3, 500):
            want = below[::-1][:limit]
            assert [
                o.seq for o in store.outputs_before("f", before_seq=before, limit=limit)
            ] == want
            got = store.observations_before("f", before_seq=before, limit=limit)
            assert [o.seq for o in got] == want
    published = store.latest_output("f", published=True)
    assert published is not None and published.seq == max(s for s in every if s % 17 == 0)
    assert store.latest_output("f") == out(seq, seq * 10, publish=seq % 17 == 0)


def test_observations_after_pages_in_order(engine: Engine) -> None:
    store = Store(engine)
    store.write_batch([obs(s) for s in range(1, 26)])
    got = [o.seq for o in store.observations_after("f", 3, page=7)]
    assert got == list(range(4, 26))


def test_checkpoints_latest_per_spec_and_pruned(engine: Engine) -> None:
    store = Store(engine)
    spec_a, spec_b = b"a" * 32, b"b" * 32
    for seq in (10, 20, 30, 40, 50):
        store.save_checkpoint(CheckpointRow("f", seq, spec_a, b"c" * 32, bytes([seq]), seq), keep=3)
    store.save_checkpoint(CheckpointRow("f", 60, spec_b, b"c" * 32, b"\x00", 60), keep=3)
    latest = store.latest_checkpoint("f", spec_a)
    assert latest is not None and latest.seq == 50 and latest.state == bytes([50])
    assert store.latest_checkpoint("f", b"z" * 32) is None
    # keep=3 over the feed: only 40, 50 (spec a) and 60 (spec b) survive
    b = store.latest_checkpoint("f", spec_b)
    assert b is not None and b.seq == 60


def test_checkpoints_of_many_feeds_in_one_write_pruned_per_feed(engine: Engine) -> None:
    store = Store(engine)
    spec = b"a" * 32
    feeds = [f"f{i}" for i in range(1200)]  # more than one prune statement's batch
    for seq in (1, 2, 3, 4):
        store.save_checkpoints(
            [CheckpointRow(f, seq, spec, b"c" * 32, bytes([seq]), seq) for f in feeds], keep=2
        )
    # one feed checkpointed alone: the others' are untouched by its pruning
    store.save_checkpoints([CheckpointRow("f7", 5, spec, b"c" * 32, b"\x05", 5)], keep=2)
    for f in feeds:
        latest = store.latest_checkpoint(f, spec)
        assert latest is not None and latest.seq == (5 if f == "f7" else 4)
    with engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(
            text("SELECT feed_id, seq FROM model_checkpoints WHERE feed_id IN ('f0', 'f7')")
        ).all()
    assert sorted(rows) == [("f0", 3), ("f0", 4), ("f7", 4), ("f7", 5)]
    with pytest.raises(ValueError, match="keep"):
        store.save_checkpoints([], keep=0)
    store.save_checkpoints([], keep=2)  # nothing to do


@pytest.mark.parametrize("batch", [3, 500])  # parameters a statement: several, and one
def test_reads_of_many_feeds_equal_the_reads_of_each(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """latest_checkpoints, outputs_after_many, observations_after_many (paged) and
    last_dedup_keys give what latest_checkpoint, outputs, observations_after and
    last_observation give feed by feed, whatever the statements are cut into."""
    monkeypatch.setattr("oracle.storage.store._PRUNE_BATCH", batch)
    store = Store(engine)
    feeds = [f"feed/{i}" for i in range(7)]
    counts = [0, 1, 2, 5, 9, 9, 13]  # observations (and outputs) per feed
    for feed, n in zip(feeds, counts, strict=True):
        store.write_batch(
            [obs(s, feed, dedup=f"k{s}" if s % 2 else None) for s in range(1, n + 1)],
            [out(s, s * 10, feed) for s in range(1, n + 1) if s % 3],
        )
    digest, other = b"d" * 32, b"o" * 32
    for feed, n in zip(feeds[2:], counts[2:], strict=True):
        for seq in range(1, n, 2):  # checkpoints at odd seqs, the newest kept
            store.save_checkpoint(CheckpointRow(feed, seq, digest, b"c" * 32, b"s%d" % seq, seq))
    # a newer checkpoint of another spec: not this spec's
    store.save_checkpoint(CheckpointRow(feeds[3], 4, other, b"c" * 32, b"x", 4), keep=5)
    wanted = {f: digest for f in [*feeds, "absent"]}
    newest = {f: max(range(1, n, 2)) for f, n in zip(feeds[2:], counts[2:], strict=True)}
    assert {f: c.seq for f, c in store.latest_checkpoints(wanted).items()} == newest
    assert store.latest_checkpoints(wanted) == {
        f: c for f in wanted if (c := store.latest_checkpoint(f, digest)) is not None
    }
    assert store.latest_checkpoints({feeds[3]: other})[feeds[3]].seq == 4
    after = {f: (i * 3) % 5 for i, f in enumerate([*feeds, "absent"])}
    assert sorted(store.outputs_after_many(after)) == sorted(
        o for f, a in after.items() for o in store.outputs(f, after_seq=a, limit=10**6)
    )
    for page in (1, 2, 3, 5000):
        got = list(store.observations_after_many(after, page=page))
        for f, a in after.items():
            assert [o for o in got if o.feed_id == f] == list(store.observations_after(f, a))
        assert len(got) == sum(len(list(store.observations_after(f, a))) for f, a in after.items())
    assert store.last_dedup_keys([*feeds, "absent"]) == {
        f: last.dedup_key for f in feeds if (last := store.last_observation(f)) is not None
    }
