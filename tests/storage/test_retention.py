"""The retention window's deletions (Store.prune): old entries go, a statement at a time;
what a restore reads (the entries from each feed's oldest checkpoint kept on), each output
id's newest entry and every entry of a feed without a checkpoint stay. Entries are stored
in runs, one a write per feed (oracle.storage.runs): most writes here store one entry a
feed, as a node polling does; a run goes whole or not at all."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from oracle.storage import CheckpointRow, ObservationRow, OutputRow, RejectionRow, Store
from oracle.storage.schema import RejectedObservation

T0 = 1_700_000_000_000


def obs(feed: str, seq: int, at: int | None = None) -> ObservationRow:
    return ObservationRow(feed, seq, "src", T0 + seq if at is None else at, None, {})


def out(feed: str, seq: int, at: int | None = None) -> OutputRow:
    return OutputRow(feed, seq, T0 + seq if at is None else at, seq, 0.5, b"c" * 32, False)


def rej(feed: str, at: int) -> RejectionRow:
    return RejectionRow(feed, "src", at, "nan", "value is NaN", None)


def checkpoint(store: Store, feed: str, *seqs: int) -> None:
    for seq in seqs:
        store.save_checkpoint(CheckpointRow(feed, seq, b"s" * 32, b"c" * 32, b"", 0))


def write(store: Store, feed: str, seqs: range, outputs: list[str] | None = None) -> None:
    """Observations of ``feed`` with those seqs, observed at T0 + seq, each with an output
    under every id of ``outputs`` (default: the feed's own), a write per seq as a node
    polling does (ids in time order across feeds)."""
    for seq in seqs:
        store.write_batch([obs(feed, seq)], [out(o, seq) for o in (outputs or [feed])])


def seqs(engine: Engine, table: str, feed: str) -> list[int]:
    """The seqs stored of ``feed``'s observations or outputs (``table``)."""
    store = Store(engine)
    if table == "observations":
        return [o.seq for o in store.observations_after(feed, -1)]
    return [o.seq for o in store.outputs(feed, limit=10**6)]


Observation, Output = "observations", "outputs"


def count(engine: Engine, table: type[RejectedObservation]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_old_rows_go_and_every_row_from_the_oldest_checkpoint_on_stays(engine: Engine) -> None:
    store = Store(engine)
    write(store, "f", range(1, 101))
    checkpoint(store, "f", 40, 60, 70, 80)  # keeps the newest 3: the oldest kept is 60
    store.write_batch(rejections=[rej("f", T0 + k) for k in range(1, 101)])
    pruned = store.prune(before_ms=T0 + 90, output_ids={"f": ["f"]})
    assert (pruned.observations, pruned.outputs, pruned.rejections) == (59, 59, 89)
    assert seqs(engine, Observation, "f") == list(range(60, 101))
    assert seqs(engine, Output, "f") == list(range(60, 101))
    assert count(engine, RejectedObservation) == 11  # by age alone: received at T0+90..100
    # the window, not the checkpoint, is the bound when it is the nearer one
    write(store, "f", range(101, 201))
    checkpoint(store, "f", 150, 160, 190)
    pruned = store.prune(before_ms=T0 + 120, output_ids={"f": ["f"]})
    assert (pruned.observations, pruned.outputs, pruned.rejections) == (60, 60, 11)
    assert seqs(engine, Observation, "f") == list(range(120, 201))
    # nothing more to do: the same pass deletes nothing
    assert store.prune(before_ms=T0 + 120, output_ids={"f": ["f"]}).total == 0


def test_a_feed_without_checkpoint_and_an_id_not_named_keep_every_row(engine: Engine) -> None:
    store = Store(engine)
    for feed in ("new", "other", "f"):
        write(store, feed, range(1, 21))
    checkpoint(store, "other", 15)
    checkpoint(store, "f", 15)
    pruned = store.prune(before_ms=T0 + 10**9, output_ids={"new": ["new"], "f": ["f"]})
    assert seqs(engine, Observation, "new") == list(range(1, 21))  # no checkpoint: replays all
    assert seqs(engine, Output, "new") == list(range(1, 21))
    assert seqs(engine, Observation, "other") == list(range(1, 21))  # not this node's
    assert seqs(engine, Observation, "f") == list(range(15, 21))
    assert (pruned.observations, pruned.outputs) == (14, 14)


def test_output_ids_other_than_the_feeds_follow_their_storage_ids_floor(engine: Engine) -> None:
    """A policy's arms (``<feed>/<arm>``) and a registered version's outputs
    (``<storage id>:<feed>``) are pruned by the checkpoint of the storage id they belong
    to; an id of the same shape that belongs to no storage id named is kept."""
    store = Store(engine)
    arms = ["P/USD/a", "P/USD/b", "P/USD#arm"]
    registered = ["m1v2:X/USD"]
    write(store, "P/USD", range(1, 31), arms)
    write(store, "m1v2", range(1, 31), registered)
    write(store, "m1v3", range(1, 31), ["m1v3:X/USD"])  # a version this node does not run
    checkpoint(store, "P/USD", 10, 20)
    checkpoint(store, "m1v2", 25)
    checkpoint(store, "m1v3", 25)
    store.prune(before_ms=T0 + 10**9, output_ids={"P/USD": arms, "m1v2": registered})
    for arm in arms:
        assert seqs(engine, Output, arm) == list(range(10, 31))
    assert seqs(engine, Observation, "P/USD") == list(range(10, 31))
    assert seqs(engine, Output, "m1v2:X/USD") == list(range(25, 31))
    assert seqs(engine, Observation, "m1v2") == list(range(25, 31))
    assert seqs(engine, Output, "m1v3:X/USD") == list(range(1, 31))
    assert seqs(engine, Observation, "m1v3") == list(range(1, 31))


def test_each_output_ids_newest_row_stays_even_below_the_floor(engine: Engine) -> None:
    """A model that stopped giving outputs (every one unquantizable since seq 5) still
    serves its newest; the observations after it go as usual."""
    store = Store(engine)
    for seq in range(1, 21):
        store.write_batch([obs("f", seq)], [out("f", seq)] if seq <= 5 else [])
    checkpoint(store, "f", 18)
    store.prune(before_ms=T0 + 10**9, output_ids={"f": ["f"]})
    assert seqs(engine, Output, "f") == [5]
    assert store.latest_output("f") == out("f", 5)
    assert seqs(engine, Observation, "f") == [18, 19, 20]


def test_a_young_row_stays_even_at_a_low_id_and_history_reads_what_is_left(
    engine: Engine,
) -> None:
    """Ids are in insertion order, times need not be (a replayed dataset's): the age is
    checked on every row. A history page over a pruned range returns the rows left."""
    store = Store(engine)
    store.write_batch([obs("late", 1, at=T0 + 10**6)], [out("late", 1, at=T0 + 10**6)])
    write(store, "f", range(1, 51))
    store.write_batch([obs("late", 2, at=T0 + 10**6 + 1)])
    checkpoint(store, "f", 45)
    checkpoint(store, "late", 1)
    pruned = store.prune(before_ms=T0 + 30, output_ids={"f": ["f"], "late": ["late"]}, rows=4)
    assert pruned.observations == 29
    assert seqs(engine, Observation, "late") == [1, 2]
    page = store.outputs_before("f", before_seq=40, limit=100)
    assert [r.seq for r in page] == list(range(39, 29, -1))  # asked from 1: what is left
    assert store.observations_before("f", before_seq=20, limit=100) == []


def test_a_pass_over_more_rows_than_a_statement_deletes_them_all_a_window_at_a_time(
    engine: Engine,
) -> None:
    store = Store(engine)
    for feed in ("a", "b", "c"):
        write(store, feed, range(1, 41))
    checkpoint(store, "a", 40)
    checkpoint(store, "b", 40)
    checkpoint(store, "c", 40)
    statements: list[tuple[str, int]] = []
    pruned = store.prune(
        before_ms=T0 + 10**9,
        output_ids={f: [f] for f in "abc"},
        rows=7,
        progress=lambda table, n: statements.append((table, n)),
    )
    assert (pruned.observations, pruned.outputs) == (117, 117)
    by_table = {t: [n for tt, n in statements if tt == t] for t in ("observations", "outputs")}
    for deleted in by_table.values():
        assert len(deleted) == 18 and max(deleted) <= 7 and sum(deleted) == 117  # 120 runs / 7
    for feed in "abc":
        assert seqs(engine, Observation, feed) == [40]


def test_a_failed_pass_keeps_what_it_deleted_and_the_next_one_finishes(engine: Engine) -> None:
    store = Store(engine)
    write(store, "f", range(1, 41))
    checkpoint(store, "f", 40)

    def fail_after_two(table: str, n: int) -> None:
        calls.append(n)
        if len(calls) == 2:
            raise RuntimeError("database is locked")

    calls: list[int] = []
    with pytest.raises(RuntimeError, match="locked"):
        store.prune(before_ms=T0 + 10**9, output_ids={"f": ["f"]}, rows=5, progress=fail_after_two)
    assert seqs(engine, Observation, "f") == list(range(11, 41))  # two statements committed
    pruned = store.prune(before_ms=T0 + 10**9, output_ids={"f": ["f"]})
    assert (pruned.observations, pruned.outputs) == (29, 39)
    assert seqs(engine, Observation, "f") == [40]


def test_a_run_goes_whole_when_every_entry_may_and_the_counts_are_entries(
    engine: Engine,
) -> None:
    """A run holding an entry the restore reads (at or above the floor) or a young one
    stays whole; one whose every entry may go goes, counted by its entries."""
    store = Store(engine)
    store.write_batch([obs("f", s) for s in range(1, 11)], [out("f", s) for s in range(1, 11)])
    store.write_batch([obs("f", s) for s in range(11, 21)], [out("f", s) for s in range(11, 21)])
    store.write_batch([obs("f", s) for s in range(21, 31)], [out("f", s) for s in range(21, 31)])
    checkpoint(store, "f", 15)  # the floor: inside the second run
    pruned = store.prune(before_ms=T0 + 10**9, output_ids={"f": ["f"]})
    assert (pruned.observations, pruned.outputs) == (10, 10)
    assert seqs(engine, Observation, "f") == list(range(11, 31))
    assert seqs(engine, Output, "f") == list(range(11, 31))
    # the window inside the last run (its entries 21-24 are old): it stays whole
    checkpoint(store, "f", 28, 29, 30)  # the floor: 28
    pruned = store.prune(before_ms=T0 + 25, output_ids={"f": ["f"]})
    assert (pruned.observations, pruned.outputs) == (10, 10)
    assert seqs(engine, Observation, "f") == list(range(21, 31))


def test_nothing_stored_nothing_pruned(engine: Engine) -> None:
    assert Store(engine).prune(before_ms=T0, output_ids={"f": ["f"]}).total == 0
    with pytest.raises(ValueError, match="one row at least"):
        Store(engine).prune(before_ms=T0, output_ids={}, rows=0)
