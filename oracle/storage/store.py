"""Reads and batched writes of the node's data: observations, rejections, outputs,
model checkpoints.

Writes go in batches, one transaction each, so that an observation and the output it
produced are stored together or not at all. A batch stores each feed's observations and
each output id's outputs as one run (oracle.storage.runs); the reads here give them back
entry by entry, as the rows they were written as.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)

from oracle.storage.runs import (
    RUN_MAX,
    ObservationRow,
    OutputRow,
    Run,
    RunOverlap,
    fold,
    observation_runs,
    output_runs,
    read_observations,
    read_outputs,
)
from oracle.storage.schema import (
    ModelCheckpoint,
    ObservationRun,
    OutputRun,
    RejectedObservation,
    Transmission,
)

_OBS = cast(Table, ObservationRun.__table__)
_REJ = cast(Table, RejectedObservation.__table__)
_OUT = cast(Table, OutputRun.__table__)
_CKPT = cast(Table, ModelCheckpoint.__table__)
_TX = cast(Table, Transmission.__table__)
_PRUNE_BATCH = 500  # feed ids per prune statement (SQLite's bound on parameters)

# Runs a feed writes after its last fold before they are folded. A fold rewrites what the
# poll's writes wrote (it costs about what those writes did), and pays only once the
# feeds' index entries have spread (scratch, 10,000 feeds: break-even after ~75 polls).
FOLD_AFTER = 64
FOLD_FEEDS = 500  # feeds a fold takes at most (one transaction a table)
# A node's folds after its group polls take the feeds with the most runs since their last
# fold, as many a poll as fold each feed about once in FOLD_AFTER polls, none with fewer
# than FOLD_LEAST: the same work as folding each feed at FOLD_AFTER, spread evenly. Feeds
# polled together reach FOLD_AFTER together: folded as they came due, 10,000 feeds took
# 20 polls of 500-feed folds in a row every 64 polls, and at a 2 s poll `mira bench pull`
# missed roots for 30-50 s in each such stretch.
FOLD_LEAST = 8
PRUNE_ROWS = 5000  # rows (by id) one retention statement looks at: one short transaction
# A retention pass's per-feed floor (:meth:`Store.prune`): the oldest checkpoint's seq of
# the storage id a row is stored under. A temporary table (one per connection, never in
# the migrations), so that the delete statements join it whatever the number of feeds.
_FLOORS = Table(
    "mira_prune_floors",
    MetaData(),
    Column("feed_id", String(128), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)


# what a retention statement deleted, as its progress callback (and the node's
# mira_pruned_rows_total) names it: the entries, whatever table holds them
_KINDS = {_OBS.name: "observations", _OUT.name: "outputs"}
_NOTHING = -(2**63)  # below every seq: a feed with nothing stored
PAGE_RUNS = 625  # runs a paged read takes a statement: at most 80,000 entries (RUN_MAX 128)


class RejectionRow(NamedTuple):
    feed_id: str
    source: str
    received_at_ms: int
    reason: str
    detail: str
    raw: str | None


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows one retention pass deleted (:meth:`Store.prune`)."""

    observations: int = 0
    outputs: int = 0
    rejections: int = 0

    @property
    def total(self) -> int:
        return self.observations + self.outputs + self.rejections


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    feed_id: str
    seq: int
    spec_digest: bytes
    commitment: bytes
    state: bytes
    created_at_ms: int


class Store:
    """The node's view of its database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # table name → feed id → the newest seq stored (what a write must be above),
        # learned from the database the first time a feed is written and kept up to date
        # by every write that commits: the overlap check costs a dict lookup a run, not
        # an index probe (~2.7 µs a feed, a fifth of a 10,000-feed poll's write)
        self._newest: dict[str, dict[str, int]] = {_OBS.name: {}, _OUT.name: {}}
        # table name → feed id → [the seq its runs are folded up to (at first: what it
        # held before this store's first write of it), the runs written after it]: which
        # feeds :meth:`fold_runs` has work for, without asking the database
        self._loose: dict[str, dict[str, list[int]]] = {_OBS.name: {}, _OUT.name: {}}

    # -- writes ---------------------------------------------------------------------------

    def write_batch(
        self,
        observations: Sequence[ObservationRow] = (),
        outputs: Sequence[OutputRow] = (),
        rejections: Sequence[RejectionRow] = (),
        *,
        also: Callable[[Connection], None] | None = None,
    ) -> None:
        """Store everything in one transaction (all or nothing). ``also`` runs in the
        same transaction, e.g. a source's own bookkeeping of what it delivered."""
        if not (observations or outputs or rejections or also):
            return
        advanced: list[tuple[str, list[Run], dict[str, int]]] = []
        with self.engine.begin() as conn:
            if also is not None:
                also(conn)
            if observations:
                runs = observation_runs(observations)
                newest = self._newest[_OBS.name]
                advanced.append((_OBS.name, runs, _insert_runs(conn, _OBS, runs, newest)))
            if outputs:
                runs = output_runs(outputs)
                newest = self._newest[_OUT.name]
                advanced.append((_OUT.name, runs, _insert_runs(conn, _OUT, runs, newest)))
            if rejections:
                # plain executemany of tuples: the rows are already in column order, and the
                # per-row parameter processing of a compiled insert() costs more than the write
                conn.exec_driver_sql(_insert_sql(conn, _REJ, RejectionRow), list(rejections))
        for table, runs, stored in advanced:  # committed: the feeds' newest seqs move
            self._newest[table].update(stored)
            loose = self._loose[table]
            for run in runs:
                entry = loose.get(run.feed_id)
                if run.size >= RUN_MAX:
                    # a full run is never folded, nor what came before it: the feed's loose
                    # runs are those after it (a replay feed's writes of a thousand rows
                    # end in a partial run each, and folding them would rewrite the full
                    # runs between them for nothing)
                    loose[run.feed_id] = [run.last_seq, 0]
                elif entry is None:
                    loose[run.feed_id] = [run.first_seq - 1, 1]
                else:
                    entry[1] += 1

    def fold_runs(
        self, *, most: int = FOLD_FEEDS, at_least: int = FOLD_AFTER, spread: int | None = None
    ) -> int:
        """Fold the runs written since their last fold, of at most ``most`` feeds that
        wrote ``at_least`` or more of them (those with the most first), into as few runs
        as hold them (oracle.storage.runs.fold: the same entries, each stretch under the
        id of its first run, so the retention pass's walk by id keeps its order). With
        ``spread``, at most one feed in ``spread`` of those this store writes, so that
        calls made at a steady pace fold each feed about once in ``spread`` calls (see
        FOLD_LEAST). One transaction a table. Returns the runs it removed. Every reader
        gives the same entries before and after. The runs are taken with ``DELETE …
        RETURNING``: a run another transaction deleted first (a retention pass) is not
        put back, and a run written meanwhile is either taken whole or left as it is,
        after the folded ones."""
        removed = 0
        for table in (_OBS, _OUT):
            loose = self._loose[table.name]
            feeds = list(loose.items())  # one copy: a write in another thread adds feeds
            share = most if spread is None else min(most, -(-len(feeds) // spread))
            # nlargest is sorted(…, reverse=True)[:share], stable: among equals, the feed
            # written first goes first
            due = {
                feed: e[0]
                for feed, e in heapq.nlargest(
                    share, (fe for fe in feeds if fe[1][1] >= at_least), key=_loose_runs
                )
            }
            if not due:
                continue
            closed: dict[str, tuple[int, int]] = {}  # feed → (new fold mark, runs after it)
            with self.engine.begin() as conn:
                mark = _marker(conn)
                taken: list[Any] = []
                # the driver's cursor: plain tuples (a SQLAlchemy Row each costs more than
                # the rest of a run's fold), in this transaction's connection
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                for clause, params, _ in _after_terms(due, mark):
                    cursor.execute(
                        f"DELETE FROM {table.name} WHERE {clause} RETURNING id, "  # noqa: S608
                        f"{', '.join(Run._fields)}",
                        params,
                    )
                    taken += cursor.fetchall()
                cursor.close()
                taken.sort(key=operator.itemgetter(1, 3))  # by feed, then seq
                rows: list[tuple[Any, ...]] = []
                for feed_id, group in itertools.groupby(taken, operator.itemgetter(1)):
                    runs = list(group)
                    stretches = fold([Run(*r[1:]) for r in runs])
                    rows += [(runs[at][0], *run) for at, run in stretches]
                    removed += len(runs) - len(stretches)
                    # a stretch the next run did not fit into is final: the mark moves past it
                    final = stretches[:-1] + [s for s in stretches[-1:] if s[1].size >= RUN_MAX]
                    closed[feed_id] = (
                        (final[-1][1].last_seq, len(stretches) - len(final))
                        if final
                        else (due[feed_id], len(stretches))
                    )
                if rows:
                    conn.exec_driver_sql(_insert_sql(conn, table, Run, with_id=True), rows)
            for feed_id, mark_seq in due.items():  # committed
                new_mark, after = closed.get(feed_id, (mark_seq, 0))
                loose[feed_id] = [new_mark, after]
        return removed

    def fold_after_poll(self) -> int:
        """A node's fold after each group poll's write: :meth:`fold_runs` of the feeds with
        the most runs since their last fold, each about once in ``FOLD_AFTER`` polls
        (see FOLD_LEAST)."""
        return self.fold_runs(at_least=FOLD_LEAST, spread=FOLD_AFTER)

    def save_checkpoint(self, checkpoint: CheckpointRow, *, keep: int = 3) -> None:
        """Store a checkpoint and prune all but the newest ``keep`` of its feed."""
        self.save_checkpoints([checkpoint], keep=keep)

    def save_checkpoints(self, checkpoints: Sequence[CheckpointRow], *, keep: int = 3) -> None:
        """Store checkpoints of many feeds in one transaction and prune all but the newest
        ``keep`` of each of those feeds (a node checkpointing 10,000 feeds writes once)."""
        if keep < 1:
            raise ValueError(f"keep {keep}: keep at least the newest checkpoint")
        if not checkpoints:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(_CKPT), [dataclasses.asdict(c) for c in checkpoints])
            newer = _CKPT.alias("newer")
            kth_newest = (
                select(newer.c.seq)
                .where(newer.c.feed_id == _CKPT.c.feed_id)
                .order_by(newer.c.seq.desc())
                .offset(keep - 1)
                .limit(1)
                .scalar_subquery()
            )
            feeds = sorted({c.feed_id for c in checkpoints})
            for at in range(0, len(feeds), _PRUNE_BATCH):
                conn.execute(
                    delete(_CKPT)
                    .where(_CKPT.c.feed_id.in_(feeds[at : at + _PRUNE_BATCH]))
                    .where(_CKPT.c.seq < kth_newest)
                )

    # -- retention ------------------------------------------------------------------------
    #
    # Entries older than the node's retention window are deleted, but never one a restore
    # reads (oracle.node.pipeline.restore_together): the observations and outputs after
    # the newest checkpoint under the feed's spec, which may be any checkpoint still kept,
    # so everything from the OLDEST one kept on (a feed without a checkpoint replays every
    # entry: nothing of it goes), and the feed's newest observation (its dedup key). Each
    # output id's newest entry stays too (served by the history and registry endpoints).
    # Entries go a run at a time: a run goes when its every entry may (its newest is old
    # and below the floor), so a run straddling either edge waits for a later pass.
    #
    # The tables are walked by id, PRUNE_ROWS rows a statement: ids are given in insertion
    # order, which is time order for every live reading, so the old rows are at the low
    # ids and the primary key finds them without a new index (an index on the age column
    # would be one more entry to write per row). The age and floor conditions are checked
    # on every row, so a row whose time is not in id order (a replayed dataset's) is never
    # deleted early: it may only wait for a later pass.

    def prune(
        self,
        *,
        before_ms: int,
        output_ids: Mapping[str, Sequence[str]],
        rows: int = PRUNE_ROWS,
        progress: Callable[[str, int], None] | None = None,
    ) -> Pruned:
        """Delete the runs of observations and of outputs observed before ``before_ms`` and
        the rejections received before it, keeping what a restore needs (above).

        ``output_ids``: storage id → the ids its outputs are stored under (a policy's
        arms, a registered version's ``<storage id>:<feed>``); the rows of storage ids
        not in it are kept whole. Each statement looks at ``rows`` rows (runs, rejections)
        at most and commits on its own; ``progress(what, deleted)`` runs after each
        (``what``: observations, outputs or rejected_observations; ``deleted``: entries; a
        caller counts or pauses there), so a failure keeps what the statements before it
        deleted. The counts returned are entries too."""
        if rows < 1:
            raise ValueError(f"rows {rows}: a statement must look at one row at least")
        done = progress or (lambda _table, _n: None)
        with self.engine.connect() as conn:
            _FLOORS.create(conn, checkfirst=True)
            try:
                _fill_floors(conn, output_ids)
                newer = _OUT.alias("newer")
                newest = select(func.max(newer.c.last_seq)).where(newer.c.feed_id == _OUT.c.feed_id)
                obs = _prune_by_id(
                    conn,
                    _OBS,
                    _OBS.c.last_observed_at_ms < before_ms,
                    rows,
                    done,
                    _below_floor(_OBS),
                )
                out = _prune_by_id(
                    conn,
                    _OUT,
                    _OUT.c.last_observed_at_ms < before_ms,
                    rows,
                    done,
                    _below_floor(_OUT),
                    _OUT.c.last_seq < newest.scalar_subquery(),
                )
                rej = _prune_by_id(conn, _REJ, _REJ.c.received_at_ms < before_ms, rows, done)
            finally:
                conn.rollback()  # a failed statement's transaction, before the drop
                _FLOORS.drop(conn, checkfirst=True)
                conn.commit()
        return Pruned(obs, out, rej)

    # -- reads ----------------------------------------------------------------------------
    #
    # A feed's runs never overlap and its seqs increase with them, so its entries in seq
    # order are its runs' in ``last_seq`` order (the unique index's), each run's in order.

    def last_observation(self, feed_id: str) -> ObservationRow | None:
        runs = self._runs(_OBS, feed_id, newest_first=True, limit=1)
        return runs[0][1][-1] if runs else None

    def observations_after(
        self, feed_id: str, seq: int, *, page: int = PAGE_RUNS
    ) -> Iterator[ObservationRow]:
        """Observations of ``feed_id`` with a sequence number above ``seq``, in order
        (``page`` runs a statement)."""
        cursor = seq
        while True:
            runs = self._runs(_OBS, feed_id, above=cursor, limit=page)
            for _, entries in runs:
                yield from (o for o in entries if o.seq > seq)
            if len(runs) < page:
                return
            cursor = runs[-1][0]

    def count_observations(self, feed_id: str) -> int:
        stmt = select(func.coalesce(func.sum(_OBS.c.size), 0)).where(_OBS.c.feed_id == feed_id)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def latest_output(self, feed_id: str, *, published: bool = False) -> OutputRow | None:
        """The newest output of ``feed_id`` (with ``published``: the newest one the publish
        rule said goes on-chain)."""
        below: int | None = None
        while True:
            runs = self._runs(_OUT, feed_id, newest_first=True, below=below, limit=PAGE_RUNS)
            for _, entries in runs:
                for o in reversed(entries):
                    if o.publish or not published:
                        return cast(OutputRow, o)
            if len(runs) < PAGE_RUNS:
                return None
            below = runs[-1][0]

    def outputs(self, feed_id: str, *, after_seq: int = -1, limit: int = 1000) -> list[OutputRow]:
        """At most ``limit`` outputs of ``feed_id`` with ``seq > after_seq``, in order."""
        found: list[OutputRow] = []
        cursor = after_seq
        while len(found) < limit:
            runs = self._runs(_OUT, feed_id, above=cursor, limit=PAGE_RUNS)
            for _, entries in runs:
                found += [o for o in entries if o.seq > after_seq]
            if len(runs) < PAGE_RUNS:
                break
            cursor = runs[-1][0]
        return found[:limit]

    # -- history pages (the API's history endpoints; newest first, bounded by ``limit``) ----

    def outputs_before(
        self, feed_id: str, *, before_seq: int | None, limit: int
    ) -> list[OutputRow]:
        """At most ``limit`` outputs of ``feed_id`` with ``seq < before_seq`` (every seq when
        None), newest first."""
        return self._before(_OUT, feed_id, before_seq, limit)

    def observations_before(
        self, feed_id: str, *, before_seq: int | None, limit: int
    ) -> list[ObservationRow]:
        """At most ``limit`` observations of ``feed_id`` with ``seq < before_seq``, newest
        first."""
        return self._before(_OBS, feed_id, before_seq, limit)

    def _before(self, table: Table, feed_id: str, before_seq: int | None, limit: int) -> list[Any]:
        found: list[Any] = []
        if limit < 1:
            return found
        if before_seq is not None:
            # the run holding before_seq, if one does, holds entries below it too
            for _, entries in self._runs(table, feed_id, above=before_seq - 1, limit=1):
                found += [e for e in reversed(entries) if e.seq < before_seq]
        cursor = before_seq
        while len(found) < limit:
            runs = self._runs(table, feed_id, newest_first=True, below=cursor, limit=PAGE_RUNS)
            for _, entries in runs:
                found += reversed(entries)
            if len(runs) < PAGE_RUNS:
                break
            cursor = runs[-1][0]
        return found[:limit]

    def _runs(
        self,
        table: Table,
        feed_id: str,
        *,
        above: int | None = None,
        below: int | None = None,
        newest_first: bool = False,
        limit: int,
    ) -> list[tuple[int, list[Any]]]:
        """At most ``limit`` runs of ``feed_id`` in ``last_seq`` order (``newest_first``:
        the other way), only those with ``above < last_seq < below``: each as its last
        seq and its entries (:class:`ObservationRow` or :class:`OutputRow`), in order."""
        stmt = select(table.c.last_seq, *_run_columns(table)).where(table.c.feed_id == feed_id)
        if above is not None:
            stmt = stmt.where(table.c.last_seq > above)
        if below is not None:
            stmt = stmt.where(table.c.last_seq < below)
        order = table.c.last_seq.desc() if newest_first else table.c.last_seq
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(order).limit(limit)).all()
        read = _reader(table)
        return [(r[0], read(*r[1:])) for r in rows]

    def transmissions_before(self, *, before_id: int | None, limit: int) -> list[dict[str, Any]]:
        """At most ``limit`` of this node's transmissions with ``id < before_id``, newest
        first: what it sent, where it landed and what it cost."""
        cols = [
            _TX.c.id, _TX.c.chain_id, _TX.c.report_hash, _TX.c.sender, _TX.c.tx_hash,
            _TX.c.status, _TX.c.created_at_ms, _TX.c.included_block, _TX.c.receipt_status,
            _TX.c.gas_used, _TX.c.effective_gas_price_wei, _TX.c.l1_fee_wei,
            _TX.c.confirmed_at_ms, _TX.c.error,
        ]  # fmt: skip
        stmt = select(*cols)
        if before_id is not None:
            stmt = stmt.where(_TX.c.id < before_id)
        stmt = stmt.order_by(_TX.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def rejection_counts(self, feed_id: str) -> dict[str, int]:
        stmt = (
            select(_REJ.c.reason, func.count())
            .where(_REJ.c.feed_id == feed_id)
            .group_by(_REJ.c.reason)
            .order_by(_REJ.c.reason)
        )
        with self.engine.connect() as conn:
            return {reason: int(n) for reason, n in conn.execute(stmt)}

    def rejections(self, feed_id: str, *, limit: int = 100) -> list[RejectionRow]:
        stmt = select(_REJ).where(_REJ.c.feed_id == feed_id).order_by(_REJ.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [
                RejectionRow(
                    feed_id=r.feed_id,
                    source=r.source,
                    received_at_ms=r.received_at_ms,
                    reason=r.reason,
                    detail=r.detail,
                    raw=r.raw,
                )
                for r in conn.execute(stmt)
            ]

    def latest_checkpoint(self, feed_id: str, spec_digest: bytes) -> CheckpointRow | None:
        """The newest checkpoint of ``feed_id`` made under the same spec."""
        return self.latest_checkpoints({feed_id: spec_digest}).get(feed_id)

    # -- a node's restore, many feeds a statement ------------------------------------------
    #
    # A node carrying 10,000 feeds restores them together (oracle.node.pipeline.
    # restore_together): a few statements per few hundred feeds instead of several a feed.
    # Plain SQL in the driver's paramstyle, at most _PRUNE_BATCH parameters a statement
    # (SQLite's bound): building the equivalent expressions costs more than running them.

    def latest_checkpoints(self, wanted: Mapping[str, bytes]) -> dict[str, CheckpointRow]:
        """:meth:`latest_checkpoint` of many feeds: feed id → spec digest in, feed id → its
        newest checkpoint made under that spec out (a feed without one is absent)."""
        found: dict[str, CheckpointRow] = {}
        items = list(wanted.items())
        step = _PRUNE_BATCH // 2  # two parameters a feed
        with self.engine.connect() as conn:
            mark = _marker(conn)
            for at in range(0, len(items), step):
                chunk = items[at : at + step]
                marks = ", ".join([mark] * len(chunk))
                # the newest of each (feed, spec) among these feeds and these specs (the
                # feed's own spec is picked below), joined back for its row: PostgreSQL
                # runs a correlated max() per row, or an OR of (feed, spec) pairs, ~10x
                # slower
                sql = (
                    "SELECT c.feed_id, c.seq, c.spec_digest, c.commitment, c.state, "  # noqa: S608
                    f"c.created_at_ms FROM {_CKPT.name} c JOIN (SELECT feed_id, max(seq) "
                    f"AS seq FROM {_CKPT.name} WHERE feed_id IN ({marks}) AND spec_digest "
                    f"IN ({marks}) GROUP BY feed_id, spec_digest) n "
                    "ON c.feed_id = n.feed_id AND c.seq = n.seq"
                )
                params = (*(f for f, _ in chunk), *(d for _, d in chunk))
                rows = conn.exec_driver_sql(sql, params).all()
                for f, seq, digest, commitment, state, created in rows:
                    if bytes(digest) == wanted[f]:
                        found[f] = CheckpointRow(
                            f, seq, bytes(digest), bytes(commitment), bytes(state), created
                        )
        return found

    def outputs_after_many(self, after: Mapping[str, int]) -> list[OutputRow]:
        """Every output of each feed id with a sequence number above ``after[feed id]``
        (:meth:`outputs` of many feeds, unbounded), each feed's in order."""
        cols = ", ".join(c.name for c in _run_columns(_OUT))
        out: list[OutputRow] = []
        with self.engine.connect() as conn:
            for where, params, _ in _after_terms(after, _marker(conn)):
                sql = (
                    f"SELECT {cols} FROM {_OUT.name} WHERE {where} "  # noqa: S608
                    "ORDER BY feed_id, last_seq"
                )
                for run in conn.exec_driver_sql(sql, params).all():
                    floor = after[run[0]]
                    out += [o for o in read_outputs(*run) if o.seq > floor]
        return out

    def observations_after_many(
        self, after: Mapping[str, int], *, page: int = PAGE_RUNS
    ) -> Iterator[ObservationRow]:
        """:meth:`observations_after` of many feeds: the observations of each feed id with
        a sequence number above ``after[feed id]``, each feed's in order (one feed's may
        come between two pages of another's), ``page`` runs a statement."""
        cols = ", ".join(c.name for c in _run_columns(_OBS))
        pending = dict(after)
        while pending:
            with self.engine.connect() as conn:
                where, params, ids = next(_after_terms(pending, _marker(conn)))
                sql = (
                    f"SELECT last_seq, {cols} FROM {_OBS.name} WHERE {where} "  # noqa: S608
                    f"ORDER BY feed_id, last_seq LIMIT {int(page)}"
                )
                runs = conn.exec_driver_sql(sql, params).all()
            for _, feed_id, body in runs:
                floor = after[feed_id]
                yield from (o for o in read_observations(feed_id, body) if o.seq > floor)
            if len(runs) < page:
                for feed_id in ids:
                    del pending[feed_id]
                continue
            # a full page: the runs are grouped by feed, so every feed in it but the last
            # one is complete; the last goes on after its last run, the others not seen
            # yet are asked again
            last_seq, last_feed, _ = runs[-1]
            for feed_id in {r[1] for r in runs} - {last_feed}:
                del pending[feed_id]
            pending[last_feed] = last_seq

    def last_dedup_keys(self, feed_ids: Sequence[str]) -> dict[str, str | None]:
        """The dedup key of each feed's newest observation (:meth:`last_observation`'s),
        for many feeds; a feed without observations is absent."""
        keys: dict[str, str | None] = {}
        with self.engine.connect() as conn:
            newest_runs = _for_feeds(
                conn,
                list(dict.fromkeys(feed_ids)),
                lambda marks: (
                    f"SELECT o.feed_id, o.body FROM {_OBS.name} o "  # noqa: S608
                    f"WHERE o.feed_id IN ({marks}) AND o.last_seq = "
                    f"(SELECT max(n.last_seq) FROM {_OBS.name} n WHERE n.feed_id = o.feed_id)"
                ),
            )
            for feed_id, body in newest_runs:
                keys[feed_id] = read_observations(feed_id, body)[-1].dedup_key
        return keys


def _run_columns(table: Table) -> list[Any]:
    """The columns :func:`_reader` reads a run of ``table`` from."""
    if table is _OUT:
        return [table.c.feed_id, table.c.body, table.c.commitments]
    return [table.c.feed_id, table.c.body]


def _reader(table: Table) -> Callable[..., list[Any]]:
    return read_outputs if table is _OUT else read_observations


def _insert_runs(
    conn: Connection, table: Table, runs: list[Run], newest: dict[str, int]
) -> dict[str, int]:
    """Insert ``runs`` (in order) if each one's first seq is above everything its feed has
    stored (a feed's seqs are stored once, in order), else raise :class:`RunOverlap`
    (the caller's transaction then rolls back, nothing of the write stays). ``newest``:
    feed id → its newest seq stored, as far as this store knows; a feed it does not know
    yet is looked up here. Returns each feed's newest seq once the runs are stored, for
    the caller to take into ``newest`` when the transaction has committed. (Another
    process writing the same feeds of the same database is not this check's: a node
    owns its database. The ``(feed_id, last_seq)`` unique index still refuses a run
    ending where a stored one ends.)"""
    unknown = {run.feed_id for run in runs}.difference(newest)
    looked_up = _newest_stored(conn, table, unknown) if unknown else {}
    after: dict[str, int] = {}
    for run in runs:
        feed_id = run.feed_id
        floor = after.get(feed_id)
        if floor is None:
            floor = newest.get(feed_id)
            if floor is None:
                floor = looked_up.get(feed_id, _NOTHING)
        if run.first_seq <= floor:
            raise RunOverlap(
                f"{table.name}: a run of {run.feed_id} from seq {run.first_seq} reaches back "
                f"to seq {floor}, stored already: nothing of the write was stored"
            )
        after[feed_id] = run.last_seq
    conn.exec_driver_sql(_insert_sql(conn, table, Run), runs)
    return after


def _newest_stored(conn: Connection, table: Table, feed_ids: set[str]) -> dict[str, int]:
    """The newest seq stored of each of ``feed_ids`` (absent: nothing stored)."""
    rows = _for_feeds(
        conn,
        sorted(feed_ids),
        lambda marks: (
            f"SELECT feed_id, max(last_seq) FROM {table.name} "  # noqa: S608
            f"WHERE feed_id IN ({marks}) GROUP BY feed_id"
        ),
    )
    return {feed_id: int(seq) for feed_id, seq in rows}


def _for_feeds(conn: Connection, ids: list[str], sql: Callable[[str], str]) -> list[Any]:
    """The rows of ``sql(marks)`` run for ``ids`` a chunk at a time (``marks``: the
    chunk's parameter markers, at most ``_PRUNE_BATCH``: SQLite's bound)."""
    rows: list[Any] = []
    mark = _marker(conn)
    for at in range(0, len(ids), _PRUNE_BATCH):
        chunk = ids[at : at + _PRUNE_BATCH]
        rows += conn.exec_driver_sql(sql(", ".join([mark] * len(chunk))), tuple(chunk)).all()
    return rows


def _fill_floors(conn: Connection, output_ids: Mapping[str, Sequence[str]]) -> None:
    """The floor of each storage id with a checkpoint, and of each of its output ids: the
    seq of its oldest checkpoint kept (rows from it on stay). Read at the pass's start: a
    checkpoint saved during the pass only raises a feed's floor."""
    conn.execute(delete(_FLOORS))
    oldest: dict[str, int] = {
        feed_id: seq
        for feed_id, seq in conn.execute(
            select(_CKPT.c.feed_id, func.min(_CKPT.c.seq)).group_by(_CKPT.c.feed_id)
        )
    }
    floors: dict[str, int] = {}
    for sid, outputs in output_ids.items():
        seq = oldest.get(sid)
        if seq is None:  # no checkpoint: a restore replays every row of it
            continue
        for key in (sid, *outputs):
            # one id in two roles (an output stored under its feed's own id) gets the
            # lower floor, which keeps more
            floors[key] = min(seq, floors.get(key, seq))
    if floors:
        conn.execute(insert(_FLOORS), [{"feed_id": k, "seq": s} for k, s in floors.items()])
        if conn.dialect.name == "postgresql":
            # a temporary table has no statistics: the planner must know it is small
            conn.exec_driver_sql(f"ANALYZE {_FLOORS.name}")
    conn.commit()


def _below_floor(table: Table) -> Any:
    """A run's every seq is below its feed's floor (NULL, so the run is kept, for a feed
    without one)."""
    floor = select(_FLOORS.c.seq).where(_FLOORS.c.feed_id == table.c.feed_id)
    return table.c.last_seq < floor.scalar_subquery()


def _prune_by_id(
    conn: Connection,
    table: Table,
    old: Any,
    rows: int,
    progress: Callable[[str, int], None],
    *unneeded: Any,
) -> int:
    """Delete the rows of ``table`` matching ``old`` and every condition of ``unneeded``
    (a row no restore or reader needs), walking the table by id ``rows`` rows a statement
    (each its own transaction). The walk ends at the first window whose newest row is not
    old (the rows after it are younger, bar those a later pass meets) or at the newest row
    when the pass began. Returns the entries deleted: a run's size, a rejection's one.
    ``progress`` gets each statement's."""
    # two statements: SQLite reads min() or max() off the key only when it is alone
    low = conn.execute(select(func.min(table.c.id))).scalar()
    top = conn.execute(select(func.max(table.c.id))).scalar()
    conn.commit()
    if low is None or top is None:
        return 0
    deleted = 0
    after = low - 1
    while after < top:
        edge = conn.execute(
            select(table.c.id, old)
            .where(table.c.id > after, table.c.id <= top)
            .order_by(table.c.id)
            .offset(rows - 1)
            .limit(1)
        ).first()
        # the window's newest row, and whether it is old (``old`` as a selected boolean)
        upto, young_edge = (top, False) if edge is None else (edge[0], not edge[1])
        stmt = delete(table).where(table.c.id > after, table.c.id <= upto, old, *unneeded)
        if "size" in table.c:
            n = sum(size for (size,) in conn.execute(stmt.returning(table.c.size)))
        else:
            n = conn.execute(stmt).rowcount
        conn.commit()
        deleted += n
        progress(_KINDS.get(table.name, table.name), n)
        after = upto
        if young_edge:
            break
    return deleted


def _loose_runs(item: tuple[str, list[int]]) -> int:
    """Of a ``(feed, [fold mark, runs after it])`` of Store._loose: the runs after it."""
    return item[1][1]


def _marker(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _after_terms(
    after: Mapping[str, int], mark: str
) -> Iterator[tuple[str, tuple[Any, ...], list[str]]]:
    """``after`` (feed id → sequence number) as WHERE clauses of at most ``_PRUNE_BATCH``
    parameters each: ``(feed_id IN (...) AND last_seq > ?) OR ...`` (the runs holding an
    entry above it), the feeds after the same
    number in one term (a node's feeds often are). Yields (clause, parameters, feed ids)."""
    limit = _PRUNE_BATCH
    groups: dict[int, list[str]] = {}
    for feed_id, seq in after.items():
        groups.setdefault(seq, []).append(feed_id)
    terms: list[str] = []
    params: list[Any] = []
    ids: list[str] = []
    for seq, members in groups.items():
        while members:
            room = limit - len(params) - 1
            if room < 1:
                yield " OR ".join(terms), tuple(params), ids
                terms, params, ids = [], [], []
                continue
            take, members = members[:room], members[room:]
            terms.append(f"(feed_id IN ({', '.join([mark] * len(take))}) AND last_seq > {mark})")
            params += [*take, seq]
            ids += take
    if terms:
        yield " OR ".join(terms), tuple(params), ids


_SQL: dict[tuple[str, str, bool], str] = {}


def _insert_sql(
    conn: Connection, table: Table, row: type[NamedTuple], *, with_id: bool = False
) -> str:
    """``INSERT INTO table (fields of row) VALUES (...)`` in the driver's paramstyle
    (``with_id``: the row's id first, then its fields)."""
    key = (conn.dialect.name, table.name, with_id)
    sql = _SQL.get(key)
    if sql is None:
        marker = _marker(conn)
        fields = ("id", *row._fields) if with_id else row._fields
        for field in fields:
            assert field in table.c, (table.name, field)  # the tuple order is the column list
        cols = ", ".join(fields)
        marks = ", ".join([marker] * len(fields))
        # identifiers from the schema module only, values always bound: no injection
        sql = _SQL[key] = f"INSERT INTO {table.name} ({cols}) VALUES ({marks})"  # noqa: S608
    return sql
