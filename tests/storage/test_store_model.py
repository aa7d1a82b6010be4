"""The store against a model of it: any sequence of writes (feeds interleaved, a feed in
several stretches of one write, writes longer than a run, writes refused for reaching
back into what a feed holds, runs folded between writes) reads back, through every
reader, exactly what a plain list of the accepted rows says, whatever the page, the bound
or the direction."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from oracle.storage import ObservationRow, OutputRow, RunOverlap, Store
from oracle.storage.runs import RUN_MAX

FEEDS = ("a", "b", "c/ü")
INT128 = st.integers(min_value=-(2**127), max_value=2**127 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)

# a write: stretches of (feed index, entries), and whether it tries to reach back
writes = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.integers(0, len(FEEDS) - 1), st.sampled_from([1, 2, 5, RUN_MAX + 1])),
            min_size=1,
            max_size=4,
        ),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(writes=writes, data=st.data())
def test_every_reader_gives_what_the_accepted_writes_hold(
    engine: Engine, writes: list[tuple[list[tuple[int, int]], bool]], data: st.DataObject
) -> None:
    run = uuid.uuid4().hex[:8]  # this example's own feeds in the shared database
    feeds = [f"{run}/{f}" for f in FEEDS]
    store = Store(engine)
    seq = dict.fromkeys(feeds, 0)
    obs: dict[str, list[ObservationRow]] = {f: [] for f in feeds}
    out: dict[str, list[OutputRow]] = {f: [] for f in feeds}
    for stretches, reach_back in writes:
        new_seq = dict(seq)
        batch_obs: list[ObservationRow] = []
        batch_out: list[OutputRow] = []
        for index, n in stretches:
            feed = feeds[index]
            for _ in range(n):
                new_seq[feed] += 1
                s = new_seq[feed]
                batch_obs.append(
                    ObservationRow(
                        feed, s, "src", 1000 * s, f"k{s}" if s % 3 else None, {"y": s / 7}
                    )
                )
                if data.draw(st.booleans()):
                    batch_out.append(
                        OutputRow(
                            feed,
                            s,
                            1000 * s,
                            data.draw(INT128),
                            data.draw(FLOATS),
                            bytes([s % 256]) * 32,
                            data.draw(st.booleans()),
                        )
                    )
        stored_any = any(seq[f] for f in feeds)
        if reach_back and stored_any:
            feed = next(f for f in feeds if seq[f])
            back = data.draw(st.integers(1, seq[feed]))
            batch_obs.append(ObservationRow(feed, back, "src", 0, None, {}))
            with pytest.raises(RunOverlap):
                store.write_batch(batch_obs, batch_out)
            continue  # nothing of it stored
        store.write_batch(batch_obs, batch_out)
        if data.draw(st.booleans()):
            # fold what the feeds wrote since their last fold (any feed with 1-3 runs)
            store.fold_runs(at_least=data.draw(st.integers(1, 3)))
        seq = new_seq
        for row in batch_obs:
            obs[row.feed_id].append(row)
        for o in batch_out:
            out[o.feed_id].append(o)

    for feed in feeds:
        every = obs[feed]
        assert store.count_observations(feed) == len(every)
        assert store.last_observation(feed) == (every[-1] if every else None)
        after = data.draw(st.integers(-1, len(every) + 1))
        page = data.draw(st.sampled_from([1, 2, 625]))
        assert list(store.observations_after(feed, after, page=page)) == [
            o for o in every if o.seq > after
        ]
        outs = out[feed]
        limit = data.draw(st.sampled_from([1, 3, 10**6]))
        assert (
            store.outputs(feed, after_seq=after, limit=limit)
            == [o for o in outs if o.seq > after][:limit]
        )
        before = data.draw(st.none() | st.integers(0, len(every) + 2))
        want_obs = [o for o in reversed(every) if before is None or o.seq < before][:limit]
        assert store.observations_before(feed, before_seq=before, limit=limit) == want_obs
        want_out = [o for o in reversed(outs) if before is None or o.seq < before][:limit]
        assert store.outputs_before(feed, before_seq=before, limit=limit) == want_out
        assert store.latest_output(feed) == (outs[-1] if outs else None)
        published = [o for o in outs if o.publish]
        assert store.latest_output(feed, published=True) == (published[-1] if published else None)

    assert store.last_dedup_keys(feeds) == {f: obs[f][-1].dedup_key for f in feeds if obs[f]}
    afters = {f: data.draw(st.integers(0, max(1, seq[f]))) for f in feeds}
    page = data.draw(st.sampled_from([1, 2, 625]))
    got = list(store.observations_after_many(afters, page=page))
    for f in feeds:
        assert [o for o in got if o.feed_id == f] == [o for o in obs[f] if o.seq > afters[f]]
    assert len(got) == sum(len([o for o in obs[f] if o.seq > afters[f]]) for f in feeds)
    many_out = store.outputs_after_many(afters)
    by_feed: dict[str, list[Any]] = {
        f: list(g) for f, g in itertools.groupby(many_out, lambda o: o.feed_id)
    }
    for f in feeds:
        assert by_feed.get(f, []) == [o for o in out[f] if o.seq > afters[f]]
