"""observations: the (feed_id, dedup_key) unique rule as a partial index

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 00:00:00

The rule stays what it was: a source's exactly-once key is unique per feed. SQL's unique
constraints never compared NULLs, so rows without a key (every HTTP reading) were never
constrained; as a partial index (``WHERE dedup_key IS NOT NULL``) they no longer get an
index entry either. A node polling 10,000 HTTP feeds together wrote three index entries
per observation on three different pages per feed; the write's cost grows with every such
index (see oracle/storage/schema.py). SQLite cannot drop a table constraint in place:
the batch operation rebuilds ``observations`` (every row kept, in its ``id`` order).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_NAME = 'uq_observations_feed_id_dedup_key'
_HAS_KEY = sa.text('dedup_key IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('observations') as batch:
        batch.drop_constraint(_NAME, type_='unique')
    op.create_index(
        _NAME,
        'observations',
        ['feed_id', 'dedup_key'],
        unique=True,
        sqlite_where=_HAS_KEY,
        postgresql_where=_HAS_KEY,
    )


def downgrade() -> None:
    op.drop_index(_NAME, table_name='observations')
    with op.batch_alter_table('observations') as batch:
        batch.create_unique_constraint(_NAME, ['feed_id', 'dedup_key'])
