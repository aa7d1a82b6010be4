"""Reads and batched writes of the node's data: observations, rejections, outputs,
model checkpoints.

Writes go in batches, one transaction each, so that an observation and the output it
produced are stored together or not at all.
"""

from __future__ import annotations

import dataclasses
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

from oracle.storage.schema import (
    ModelCheckpoint,
    Observation,
    Output,
    RejectedObservation,
    Transmission,
)

_OBS = cast(Table, Observation.__table__)
_REJ = cast(Table, RejectedObservation.__table__)
_OUT = cast(Table, Output.__table__)
_CKPT = cast(Table, ModelCheckpoint.__table__)
_TX = cast(Table, Transmission.__table__)
_PRUNE_BATCH = 500  # feed ids per prune statement (SQLite's bound on parameters)
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


class ObservationRow(NamedTuple):
    feed_id: str
    seq: int
    source: str
    observed_at_ms: int
    dedup_key: str | None
    record: str


class OutputRow(NamedTuple):
    feed_id: str
    seq: int
    observed_at_ms: int
    value: int
    raw_value: float
    commitment: bytes
    publish: bool


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
        with self.engine.begin() as conn:
            if also is not None:
                also(conn)
            # plain executemany of tuples: the rows are already in column order, and the
            # per-row parameter processing of a compiled insert() costs more than the write
            if observations:
                conn.exec_driver_sql(_insert_sql(conn, _OBS, ObservationRow), list(observations))
            if outputs:
                conn.exec_driver_sql(
                    _insert_sql(conn, _OUT, OutputRow),
                    [(f, s, t, str(v), r, c, p) for f, s, t, v, r, c, p in outputs],
                )
            if rejections:
                conn.exec_driver_sql(_insert_sql(conn, _REJ, RejectionRow), list(rejections))

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
    # Rows older than the node's retention window are deleted, but never one a restore
    # reads (oracle.node.pipeline.restore_together): the observations and outputs after
    # the newest checkpoint under the feed's spec, which may be any checkpoint still kept,
    # so everything from the OLDEST one kept on (a feed without a checkpoint replays every
    # row: nothing of it goes), and the feed's newest observation (its dedup key). Each
    # output id's newest row stays too (served by the history and registry endpoints).
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
        """Delete the observations and outputs observed before ``before_ms`` and the
        rejections received before it, keeping what a restore needs (above).

        ``output_ids``: storage id → the ids its outputs are stored under (a policy's
        arms, a registered version's ``<storage id>:<feed>``); the rows of storage ids
        not in it are kept whole. Each statement looks at ``rows`` rows at most and
        commits on its own; ``progress(table, deleted)`` runs after each (a caller counts
        or pauses there), so a failure keeps what the statements before it deleted."""
        if rows < 1:
            raise ValueError(f"rows {rows}: a statement must look at one row at least")
        done = progress or (lambda _table, _n: None)
        with self.engine.connect() as conn:
            _FLOORS.create(conn, checkfirst=True)
            try:
                _fill_floors(conn, output_ids)
                newer = _OUT.alias("newer")
                newest = select(func.max(newer.c.seq)).where(newer.c.feed_id == _OUT.c.feed_id)
                obs = _prune_by_id(
                    conn, _OBS, _OBS.c.observed_at_ms < before_ms, rows, done, _below_floor(_OBS)
                )
                out = _prune_by_id(
                    conn,
                    _OUT,
                    _OUT.c.observed_at_ms < before_ms,
                    rows,
                    done,
                    _below_floor(_OUT),
                    _OUT.c.seq < newest.scalar_subquery(),
                )
                rej = _prune_by_id(conn, _REJ, _REJ.c.received_at_ms < before_ms, rows, done)
            finally:
                conn.rollback()  # a failed statement's transaction, before the drop
                _FLOORS.drop(conn, checkfirst=True)
                conn.commit()
        return Pruned(obs, out, rej)

    # -- reads ----------------------------------------------------------------------------

    def last_observation(self, feed_id: str) -> ObservationRow | None:
        stmt = select(_OBS).where(_OBS.c.feed_id == feed_id).order_by(_OBS.c.seq.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _obs_row(row._mapping)

    def has_dedup_key(self, feed_id: str, dedup_key: str) -> bool:
        stmt = (
            select(_OBS.c.id).where(_OBS.c.feed_id == feed_id).where(_OBS.c.dedup_key == dedup_key)
        )
        with self.engine.connect() as conn:
            return conn.execute(stmt).first() is not None

    def observations_after(
        self, feed_id: str, seq: int, *, page: int = 5000
    ) -> Iterator[ObservationRow]:
        """Observations of ``feed_id`` with a sequence number above ``seq``, in order."""
        cursor = seq
        while True:
            stmt = (
                select(_OBS)
                .where(_OBS.c.feed_id == feed_id)
                .where(_OBS.c.seq > cursor)
                .order_by(_OBS.c.seq)
                .limit(page)
            )
            with self.engine.connect() as conn:
                rows = [_obs_row(r._mapping) for r in conn.execute(stmt)]
            yield from rows
            if len(rows) < page:
                return
            cursor = rows[-1].seq

    def count_observations(self, feed_id: str) -> int:
        stmt = select(func.count()).select_from(_OBS).where(_OBS.c.feed_id == feed_id)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def latest_output(self, feed_id: str, *, published: bool = False) -> OutputRow | None:
        stmt = select(_OUT).where(_OUT.c.feed_id == feed_id)
        if published:
            stmt = stmt.where(_OUT.c.publish.is_(True))
        stmt = stmt.order_by(_OUT.c.seq.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _out_row(row._mapping)

    def outputs(self, feed_id: str, *, after_seq: int = -1, limit: int = 1000) -> list[OutputRow]:
        stmt = (
            select(_OUT)
            .where(_OUT.c.feed_id == feed_id)
            .where(_OUT.c.seq > after_seq)
            .order_by(_OUT.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_out_row(r._mapping) for r in conn.execute(stmt)]

    # -- history pages (the API's history endpoints; newest first, bounded by ``limit``) ----

    def outputs_before(
        self, feed_id: str, *, before_seq: int | None, limit: int
    ) -> list[OutputRow]:
        """At most ``limit`` outputs of ``feed_id`` with ``seq < before_seq`` (every seq when
        None), newest first."""
        stmt = select(_OUT).where(_OUT.c.feed_id == feed_id)
        if before_seq is not None:
            stmt = stmt.where(_OUT.c.seq < before_seq)
        stmt = stmt.order_by(_OUT.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_out_row(r._mapping) for r in conn.execute(stmt)]

    def observations_before(
        self, feed_id: str, *, before_seq: int | None, limit: int
    ) -> list[ObservationRow]:
        """At most ``limit`` observations of ``feed_id`` with ``seq < before_seq``, newest
        first."""
        stmt = select(_OBS).where(_OBS.c.feed_id == feed_id)
        if before_seq is not None:
            stmt = stmt.where(_OBS.c.seq < before_seq)
        stmt = stmt.order_by(_OBS.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_obs_row(r._mapping) for r in conn.execute(stmt)]

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
        cols = "feed_id, seq, observed_at_ms, value, raw_value, commitment, publish"
        out: list[OutputRow] = []
        with self.engine.connect() as conn:
            for where, params, _ in _after_terms(after, _marker(conn)):
                sql = f"SELECT {cols} FROM {_OUT.name} WHERE {where} ORDER BY feed_id, seq"  # noqa: S608
                out += [
                    OutputRow(f, seq, t, int(v), r, bytes(c), bool(p))
                    for f, seq, t, v, r, c, p in conn.exec_driver_sql(sql, params).all()
                ]
        return out

    def observations_after_many(
        self, after: Mapping[str, int], *, page: int = 5000
    ) -> Iterator[ObservationRow]:
        """:meth:`observations_after` of many feeds: the observations of each feed id with
        a sequence number above ``after[feed id]``, each feed's in order (one feed's may
        come between two pages of another's), ``page`` rows a statement."""
        cols = "feed_id, seq, source, observed_at_ms, dedup_key, record"
        pending = dict(after)
        while pending:
            with self.engine.connect() as conn:
                where, params, ids = next(_after_terms(pending, _marker(conn)))
                sql = (
                    f"SELECT {cols} FROM {_OBS.name} WHERE {where} "  # noqa: S608
                    f"ORDER BY feed_id, seq LIMIT {int(page)}"
                )
                rows = [ObservationRow(*r) for r in conn.exec_driver_sql(sql, params).all()]
            yield from rows
            if len(rows) < page:
                for feed_id in ids:
                    del pending[feed_id]
                continue
            # a full page: the rows are grouped by feed, so every feed in it but the last
            # one is complete; the last goes on after its last row, the others not seen
            # yet are asked again
            last = rows[-1]
            for feed_id in {r.feed_id for r in rows} - {last.feed_id}:
                del pending[feed_id]
            pending[last.feed_id] = last.seq

    def last_dedup_keys(self, feed_ids: Sequence[str]) -> dict[str, str | None]:
        """The dedup key of each feed's newest observation (:meth:`last_observation`'s),
        for many feeds; a feed without observations is absent."""
        keys: dict[str, str | None] = {}
        ids = list(dict.fromkeys(feed_ids))
        with self.engine.connect() as conn:
            mark = _marker(conn)
            for at in range(0, len(ids), _PRUNE_BATCH):
                chunk = ids[at : at + _PRUNE_BATCH]
                sql = (
                    f"SELECT o.feed_id, o.dedup_key FROM {_OBS.name} o "  # noqa: S608
                    f"WHERE o.feed_id IN ({', '.join([mark] * len(chunk))}) AND o.seq = "
                    f"(SELECT max(n.seq) FROM {_OBS.name} n WHERE n.feed_id = o.feed_id)"
                )
                keys.update((f, k) for f, k in conn.exec_driver_sql(sql, tuple(chunk)).all())
        return keys


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
    """A row's seq is below its feed's floor (NULL, so the row is kept, for a feed
    without one)."""
    floor = select(_FLOORS.c.seq).where(_FLOORS.c.feed_id == table.c.feed_id)
    return table.c.seq < floor.scalar_subquery()


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
    when the pass began. Returns the rows deleted."""
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
        result = conn.execute(
            delete(table).where(table.c.id > after, table.c.id <= upto, old, *unneeded)
        )
        conn.commit()
        deleted += result.rowcount
        progress(table.name, result.rowcount)
        after = upto
        if young_edge:
            break
    return deleted


def _marker(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _after_terms(
    after: Mapping[str, int], mark: str
) -> Iterator[tuple[str, tuple[Any, ...], list[str]]]:
    """``after`` (feed id → sequence number) as WHERE clauses of at most ``_PRUNE_BATCH``
    parameters each: ``(feed_id IN (...) AND seq > ?) OR ...``, the feeds after the same
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
            terms.append(f"(feed_id IN ({', '.join([mark] * len(take))}) AND seq > {mark})")
            params += [*take, seq]
            ids += take
    if terms:
        yield " OR ".join(terms), tuple(params), ids


_SQL: dict[tuple[str, str], str] = {}


def _insert_sql(conn: Connection, table: Table, row: type[NamedTuple]) -> str:
    """``INSERT INTO table (fields of row) VALUES (...)`` in the driver's paramstyle."""
    key = (conn.dialect.name, table.name)
    sql = _SQL.get(key)
    if sql is None:
        marker = _marker(conn)
        for field in row._fields:
            assert field in table.c, (table.name, field)  # the tuple order is the column list
        cols = ", ".join(row._fields)
        marks = ", ".join([marker] * len(row._fields))
        # identifiers from the schema module only, values always bound: no injection
        sql = _SQL[key] = f"INSERT INTO {table.name} ({cols}) VALUES ({marks})"  # noqa: S608
    return sql


def _obs_row(m: Any) -> ObservationRow:
    return ObservationRow(
        feed_id=m["feed_id"],
        seq=m["seq"],
        source=m["source"],
        observed_at_ms=m["observed_at_ms"],
        dedup_key=m["dedup_key"],
        record=m["record"],
    )


def _out_row(m: Any) -> OutputRow:
    return OutputRow(
        feed_id=m["feed_id"],
        seq=m["seq"],
        observed_at_ms=m["observed_at_ms"],
        value=int(m["value"]),
        raw_value=m["raw_value"],
        commitment=bytes(m["commitment"]),
        publish=bool(m["publish"]),
    )
