"""Bookkeeping of the chain-events sources: the blocks they scanned (for reorg checks)
and every log they processed (for exactly-once ingestion). See
``oracle.sources.chain_events``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
)

from oracle.storage.schema import ChainBlock, ChainLog

_BLOCKS = cast(Table, ChainBlock.__table__)
_LOGS = cast(Table, ChainLog.__table__)

# (number, hash, parent hash)
BlockTuple = tuple[int, str, str]
# (block number, block hash, log index, tx hash, tx ordinal)
LogTuple = tuple[int, str, int, str, int]


class ChainScanStore:
    def __init__(self, engine: Engine, feed_id: str, source: str) -> None:
        self.engine = engine
        self.feed_id = feed_id
        self.source = source

    def _mine(self, table: Table) -> ColumnElement[bool]:
        return and_(table.c.feed_id == self.feed_id, table.c.source == self.source)

    def blocks(self) -> list[BlockTuple]:
        stmt = (
            select(_BLOCKS.c.number, _BLOCKS.c.hash, _BLOCKS.c.parent_hash)
            .where(self._mine(_BLOCKS))
            .order_by(_BLOCKS.c.number)
        )
        with self.engine.connect() as conn:
            return [(int(n), str(h), str(p)) for n, h, p in conn.execute(stmt)]

    def known(self, logs: Sequence[LogTuple]) -> set[int]:
        """Indexes into ``logs`` of those already processed, by either identity."""
        if not logs:
            return set()
        by_block = {(bh, li): i for i, (_, bh, li, _, _) in enumerate(logs)}
        by_tx = {(th, to): i for i, (_, _, _, th, to) in enumerate(logs)}
        found: set[int] = set()
        chunk = 200
        items = list(logs)
        with self.engine.connect() as conn:
            for k in range(0, len(items), chunk):
                part = items[k : k + chunk]
                stmt = (
                    select(
                        _LOGS.c.block_hash, _LOGS.c.log_index, _LOGS.c.tx_hash, _LOGS.c.tx_ordinal
                    )
                    .where(self._mine(_LOGS))
                    .where(
                        or_(
                            tuple_(_LOGS.c.block_hash, _LOGS.c.log_index).in_(
                                [(bh, li) for _, bh, li, _, _ in part]
                            ),
                            tuple_(_LOGS.c.tx_hash, _LOGS.c.tx_ordinal).in_(
                                [(th, to) for _, _, _, th, to in part]
                            ),
                        )
                    )
                )
                for bh, li, th, to in conn.execute(stmt):
                    if (bh, li) in by_block:
                        found.add(by_block[(bh, li)])
                    if (th, to) in by_tx:
                        found.add(by_tx[(th, to)])
        return found

    def count_logs_in(self, block_hashes: Sequence[str]) -> int:
        if not block_hashes:
            return 0
        stmt = (
            select(func.count())
            .select_from(_LOGS)
            .where(self._mine(_LOGS))
            .where(_LOGS.c.block_hash.in_(list(block_hashes)))
        )
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def writer(
        self,
        logs: Sequence[LogTuple],
        blocks: Sequence[BlockTuple],
        *,
        rewind_above: int | None,
        keep_from: int | None,
    ) -> Callable[[Connection], None]:
        """What to run inside the transaction that stores the batch's observations:
        forget blocks above ``rewind_above`` (a reorg), record ``blocks`` and ``logs``,
        prune blocks below ``keep_from``."""

        def write(conn: Connection) -> None:
            mine = self._mine(_BLOCKS)
            if rewind_above is not None:
                conn.execute(delete(_BLOCKS).where(mine).where(_BLOCKS.c.number > rewind_above))
            if blocks:
                conn.execute(
                    delete(_BLOCKS).where(mine).where(_BLOCKS.c.number.in_([b[0] for b in blocks]))
                )
                conn.execute(
                    insert(_BLOCKS),
                    [
                        {
                            "feed_id": self.feed_id,
                            "source": self.source,
                            "number": n,
                            "hash": h,
                            "parent_hash": p,
                        }
                        for n, h, p in blocks
                    ],
                )
            if logs:
                conn.execute(
                    insert(_LOGS),
                    [
                        {
                            "feed_id": self.feed_id,
                            "source": self.source,
                            "block_number": bn,
                            "block_hash": bh,
                            "log_index": li,
                            "tx_hash": th,
                            "tx_ordinal": to,
                        }
                        for bn, bh, li, th, to in logs
                    ],
                )
            if keep_from is not None:
                conn.execute(delete(_BLOCKS).where(mine).where(_BLOCKS.c.number < keep_from))

        return write
