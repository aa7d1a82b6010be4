"""Folding a feed's runs (Store.fold_runs, oracle.storage.runs.fold): a poll of many
feeds writes a one-entry run a feed; folded, the same entries sit in a run per RUN_MAX,
and every reader gives what it gave before."""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from oracle.storage import ObservationRow, OutputRow, StorageError, Store
from oracle.storage.runs import RUN_MAX, Run, fold, observation_runs, read_observations
from oracle.storage.store import FOLD_AFTER

FEEDS = [f"PULL-{i}/USD" for i in range(5)]


def _poll(store: Store, p: int, feeds: list[str] = FEEDS) -> None:
    """One poll of ``feeds``: an observation and its output each (one-entry runs)."""
    store.write_batch(
        [ObservationRow(f, p, "http", 1000 * p, None, {"value": p + 0.5}) for f in feeds],
        [OutputRow(f, p, 1000 * p, 10**20 + p, p + 0.5, os.urandom(32), p % 3 == 0) for f in feeds],
    )


def _readers(store: Store, feeds: list[str]) -> list[Any]:
    """What every reader says of ``feeds``."""
    said: list[Any] = []
    for f in feeds:
        said += [
            store.count_observations(f),
            store.last_observation(f),
            list(store.observations_after(f, 0, page=2)),
            store.outputs(f, limit=10**6),
            store.outputs_before(f, before_seq=None, limit=7),
            store.observations_before(f, before_seq=50, limit=9),
            store.latest_output(f),
            store.latest_output(f, published=True),
        ]
    said.append(list(store.observations_after_many(dict.fromkeys(feeds, 3))))
    said.append(store.outputs_after_many(dict.fromkeys(feeds, 3)))
    said.append(store.last_dedup_keys(feeds))
    return said


def _runs_of(engine: Engine, table: str, feed: str) -> list[tuple[int, int, int]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(f"SELECT id, last_seq, size FROM {table} WHERE feed_id = :f ORDER BY id"),
                {"f": feed},
            )
        ]


def test_a_feeds_one_entry_runs_fold_into_few_and_every_reader_gives_the_same(
    engine: Engine,
) -> None:
    store = Store(engine)
    for p in range(1, 301):
        _poll(store, p)
        if p % 10 == 0:
            before = _readers(store, FEEDS)
            store.fold_runs()
            assert _readers(store, FEEDS) == before
    for table in ("observation_runs", "output_runs"):
        runs = _runs_of(engine, table, FEEDS[0])
        # 300 entries: two full runs, then what was written since (fewer than FOLD_AFTER
        # one-entry runs, and at most one open stretch)
        assert [size for _, _, size in runs[:2]] == [RUN_MAX, RUN_MAX]
        assert len(runs) <= 3 + FOLD_AFTER
        assert sum(size for _, _, size in runs) == 300
        ids = [i for i, _, _ in runs]
        assert ids == sorted(ids) and [s for _, s, _ in runs] == sorted(s for _, s, _ in runs)
    # a fresh store (a restarted node) reads the same, and goes on writing after them
    again = Store(engine)
    assert _readers(again, FEEDS) == _readers(store, FEEDS)
    _poll(again, 301)
    assert again.count_observations(FEEDS[0]) == 301


def test_nothing_to_fold_changes_nothing(engine: Engine) -> None:
    store = Store(engine)
    for p in range(1, FOLD_AFTER):
        _poll(store, p)
    assert store.fold_runs() == 0
    assert len(_runs_of(engine, "observation_runs", FEEDS[0])) == FOLD_AFTER - 1
    _poll(store, FOLD_AFTER)
    assert store.fold_runs(most=2) == 2 * 2 * (FOLD_AFTER - 1)  # two feeds, both tables
    assert len(_runs_of(engine, "observation_runs", FEEDS[0])) == 1
    assert len(_runs_of(engine, "observation_runs", FEEDS[2])) == FOLD_AFTER
    assert store.fold_runs() == 3 * 2 * (FOLD_AFTER - 1)  # the three left


def test_the_feeds_with_the_most_runs_fold_first(engine: Engine) -> None:
    """Among feeds due, those holding the most runs since their last fold go first (among
    equals, the one written first)."""
    store = Store(engine)
    for p in range(1, 11):
        _poll(store, p)
    for p in range(11, 14):
        _poll(store, p, FEEDS[3:4])  # FEEDS[3] now holds 13 runs, the others 10
    assert store.fold_runs(most=2, at_least=1) == 2 * (12 + 9)
    assert [len(_runs_of(engine, "observation_runs", f)) for f in FEEDS] == [1, 10, 10, 1, 10]


def test_a_node_folds_an_even_share_of_its_feeds_after_each_poll(engine: Engine) -> None:
    """Feeds polled together reach the fold's threshold together; after each poll a node
    folds one feed in FOLD_AFTER of them (the most loose first), so its folds cost about
    the same every poll instead of all of them coming due at once. Every feed is still
    folded about once in FOLD_AFTER polls, and never with fewer than FOLD_LEAST runs."""
    from oracle.storage.store import FOLD_LEAST

    feeds = [f"EVEN-{i}" for i in range(3 * FOLD_AFTER)]  # a share of 3 feeds a poll
    store = Store(engine)
    folded: list[int] = []  # feeds folded after each poll
    for p in range(1, 3 * FOLD_AFTER + 1):
        _poll(store, p, feeds)
        loose = {f: e[1] for f, e in store._loose["observation_runs"].items()}
        store.fold_after_poll()
        after = store._loose["observation_runs"]
        folded.append(sum(1 for f in feeds if after[f][1] < loose[f]))
        assert all(loose[f] >= FOLD_LEAST for f in feeds if after[f][1] < loose[f])
    assert folded[: FOLD_LEAST - 1] == [0] * (FOLD_LEAST - 1)
    assert set(folded[FOLD_LEAST - 1 :]) == {3}  # three a poll, every poll
    runs = [len(_runs_of(engine, "observation_runs", f)) for f in feeds]
    assert max(runs) <= 2 * FOLD_AFTER  # none left far behind
    assert [o.seq for o in store.observations_after(feeds[-1], 0)] == list(
        range(1, 3 * FOLD_AFTER + 1)
    )


def test_full_runs_and_what_came_before_them_are_never_folded(engine: Engine) -> None:
    """A replay feed's write of more than RUN_MAX rows ends in a partial run: only the runs
    after its last full run count towards a fold (folding the partial ones would rewrite
    the full runs between them and merge nothing)."""
    store = Store(engine)
    feed = FEEDS[0]
    at = 0
    for _ in range(10):  # each write: a full run, then a run of 3
        seqs = range(at + 1, at + RUN_MAX + 4)
        at = seqs[-1]
        store.write_batch([ObservationRow(feed, s, "replay", s, None, {"v": 0.5}) for s in seqs])
    assert store._loose["observation_runs"][feed] == [at - 3, 1]  # the last partial only
    assert store.fold_runs(at_least=2) == 0
    _poll(store, at + 1, [feed])  # a one-entry run after it: two loose, folded together
    assert store.fold_runs(at_least=2) == 1
    assert [o.seq for o in store.observations_after(feed, 0)] == list(range(1, at + 2))


def test_a_run_deleted_before_the_fold_is_not_put_back(engine: Engine) -> None:
    """A retention pass that deleted some of a feed's runs first: the fold folds what is
    left, and what was deleted stays deleted."""
    store = Store(engine)
    for p in range(1, 41):
        _poll(store, p, FEEDS[:1])
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM observation_runs WHERE last_seq IN (5, 6, 20)"))
    store.fold_runs(at_least=1)
    seqs = [o.seq for o in store.observations_after(FEEDS[0], 0)]
    assert seqs == [s for s in range(1, 41) if s not in (5, 6, 20)]
    assert len(_runs_of(engine, "observation_runs", FEEDS[0])) == 1


def test_runs_written_before_a_restart_are_left_as_they_are(engine: Engine) -> None:
    """A store folds only what it wrote itself (it knows where those begin without asking
    the database): a restarted node's earlier one-entry runs stay, and read the same."""
    first = Store(engine)
    for p in range(1, 41):
        _poll(first, p, FEEDS[:1])
    again = Store(engine)
    for p in range(41, 81):
        _poll(again, p, FEEDS[:1])
    again.fold_runs(at_least=1)
    sizes = [size for _, _, size in _runs_of(engine, "observation_runs", FEEDS[0])]
    assert sizes == [1] * 40 + [40]
    assert [o.seq for o in again.observations_after(FEEDS[0], 0)] == list(range(1, 81))


# -- the codec's fold -------------------------------------------------------------------------


def _run(feed: str, seqs: list[int]) -> Run:
    (run,) = observation_runs(
        [ObservationRow(feed, s, "src", s, f"k{s}", {"y": s / 3}) for s in seqs]
    )
    return run


@given(st.lists(st.integers(1, RUN_MAX), min_size=1, max_size=12))
def test_fold_keeps_every_entry_in_order_within_run_max(sizes: list[int]) -> None:
    runs, seq = [], 0
    for n in sizes:
        runs.append(_run("f", list(range(seq + 1, seq + n + 1))))
        seq += n
    folded = fold(runs)
    entries = [o for _, run in folded for o in read_observations("f", run.body)]
    assert [o.seq for o in entries] == list(range(1, seq + 1))
    assert all(run.size <= RUN_MAX for _, run in folded)
    assert [run.size for _, run in folded] == [
        len(read_observations("f", run.body)) for _, run in folded
    ]
    for at, run in folded:
        assert run.first_seq == runs[at].first_seq
    # greedy: no two neighbouring stretches would fit in one
    assert all(a.size + b.size > RUN_MAX for (_, a), (_, b) in itertools.pairwise(folded))


def test_fold_refuses_runs_that_do_not_follow_each_other() -> None:
    with pytest.raises(StorageError, match="do not follow each other"):
        fold([_run("f", [1, 2]), _run("f", [2, 3])])
    with pytest.raises(StorageError, match="do not follow each other"):
        fold([_run("f", [1]), _run("g", [2])])
    # also where the two would not share a stretch (each a full run)
    full = list(range(1, RUN_MAX + 1))
    with pytest.raises(StorageError, match="do not follow each other"):
        fold([_run("f", full), _run("f", full)])
    broken = _run("f", [3])._replace(body='{"not": "an array"}')
    with pytest.raises(StorageError, match="not an array of entries"):
        fold([_run("f", [1, 2]), broken])
