"""observations and outputs stored in runs: one row a write per feed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:00:00

``observations`` and ``outputs`` (a row an entry) become ``observation_runs`` and
``output_runs`` (a row a write per feed; the format is oracle.storage.runs'). Every row
moves: the old rows are read in ``id`` order and each stretch of one feed's consecutive
rows becomes a run (at most RUN_MAX entries), so the runs' ids keep the time order the
retention pass walks by (oracle.storage.store). A record's text moves verbatim. The
``(feed_id, dedup_key)`` index goes (see ObservationRun): the downgrade rebuilds the old
tables, row by row in the same order, with their constraints.

The rows are encoded with oracle.storage.runs, the format's one place: a later change of
that format comes with a migration of its own, run after this one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from oracle.storage.records import decode_record, encode_record
from oracle.storage.runs import (
    ObservationRow,
    OutputRow,
    Run,
    observation_runs,
    output_runs,
    read_observations,
    read_outputs,
)


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_PAGE = 5000  # old rows (or runs) read a statement
_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_OBS_COLS = ('feed_id', 'seq', 'source', 'observed_at_ms', 'dedup_key', 'record')
_OUT_COLS = ('feed_id', 'seq', 'observed_at_ms', 'value', 'raw_value', 'commitment', 'publish')
_RUN_COLS = Run._fields


def _create_runs(name: str) -> None:
    op.create_table(name,
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('feed_id', sa.String(length=128), nullable=False),
    sa.Column('first_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_observed_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('commitments', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{name}')),
    sa.UniqueConstraint('feed_id', 'last_seq', name=op.f(f'uq_{name}_feed_id_last_seq'))
    )


def _create_observations() -> None:
    op.create_table('observations',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('feed_id', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('observed_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('dedup_key', sa.String(length=200), nullable=True),
    sa.Column('record', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observations')),
    sa.UniqueConstraint('feed_id', 'seq', name=op.f('uq_observations_feed_id_seq'))
    )
    has_key = sa.text('dedup_key IS NOT NULL')
    op.create_index('uq_observations_feed_id_dedup_key', 'observations', ['feed_id', 'dedup_key'],
                    unique=True, sqlite_where=has_key, postgresql_where=has_key)


def _create_outputs() -> None:
    op.create_table('outputs',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('feed_id', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('observed_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.String(length=48), nullable=False),
    sa.Column('raw_value', sa.Float(precision=53), nullable=False),
    sa.Column('commitment', sa.LargeBinary(length=32), nullable=False),
    sa.Column('publish', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outputs')),
    sa.UniqueConstraint('feed_id', 'seq', name=op.f('uq_outputs_feed_id_seq'))
    )


def _pages(conn: sa.Connection, table: str, cols: Sequence[str]) -> Iterator[list[Any]]:
    """Every row of ``table`` in id order, a page at a time."""
    after = -1
    while True:
        rows = conn.execute(
            sa.text(f"SELECT id, {', '.join(cols)} FROM {table} WHERE id > :after "  # noqa: S608
                    f"ORDER BY id LIMIT {_PAGE}"),
            {'after': after},
        ).all()
        if not rows:
            return
        after = rows[-1][0]
        yield [tuple(r[1:]) for r in rows]


def _to_runs(conn: sa.Connection, table: str, cols: Sequence[str], runs: str,
              row: Callable[[Any], Any], encode: Callable[[list[Any]], list[Run]]) -> None:
    target = sa.table(runs, *map(sa.column, _RUN_COLS))
    for page in _pages(conn, table, cols):
        made = encode([row(r) for r in page])
        conn.execute(sa.insert(target), [r._asdict() for r in made])


def _from_runs(conn: sa.Connection, runs: str, table: str, cols: Sequence[str],
               decode: Callable[[Any], list[Any]], row: Callable[[Any], dict[str, Any]]) -> None:
    target = sa.table(table, *map(sa.column, cols))
    for page in _pages(conn, runs, _RUN_COLS):
        entries = list(itertools.chain.from_iterable(map(decode, page)))
        if entries:
            conn.execute(sa.insert(target), [row(e) for e in entries])


def _drop_leftover(*tables: str) -> None:
    """Tables this migration creates, left by a run of it that was interrupted before
    migrations ran in one transaction on SQLite (oracle/storage/migrations/env.py): the
    driver then committed each CREATE on its own, so a killed `mira db upgrade` could
    leave them behind (empty or partly filled, the revision unchanged). Their content is
    redone from the tables that are still the source of truth."""
    for table in tables:
        op.execute(f'DROP TABLE IF EXISTS {table}')


def upgrade() -> None:
    conn = op.get_bind()
    _drop_leftover('observation_runs', 'output_runs')
    _create_runs('observation_runs')
    _create_runs('output_runs')
    _to_runs(conn, 'observations', _OBS_COLS, 'observation_runs',
             lambda r: ObservationRow(*r[:5], decode_record(r[5])), observation_runs)
    _to_runs(conn, 'outputs', _OUT_COLS, 'output_runs',
             lambda r: OutputRow(r[0], r[1], r[2], int(r[3]), float(r[4]), bytes(r[5]),
                                 bool(r[6])),
             output_runs)
    op.drop_index('uq_observations_feed_id_dedup_key', table_name='observations')
    op.drop_table('observations')
    op.drop_table('outputs')


def downgrade() -> None:
    conn = op.get_bind()
    _drop_leftover('observations', 'outputs')
    _create_observations()
    _create_outputs()
    _from_runs(conn, 'observation_runs', 'observations', _OBS_COLS,
               lambda r: read_observations(r[0], r[5]),
               lambda e: {**e._asdict(), 'record': encode_record(e.record)})
    _from_runs(conn, 'output_runs', 'outputs', _OUT_COLS,
               lambda r: read_outputs(r[0], r[5], r[6]),
               lambda e: {**e._asdict(), 'value': str(e.value)})
    op.drop_table('observation_runs')
    op.drop_table('output_runs')
