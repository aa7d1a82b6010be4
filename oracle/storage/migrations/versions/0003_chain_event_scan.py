"""chain-events source: scanned block hashes and processed logs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 00:00:00

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chain_blocks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('feed_id', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=66), nullable=False),
    sa.Column('parent_hash', sa.String(length=66), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_blocks')),
    sa.UniqueConstraint('feed_id', 'source', 'number', name=op.f('uq_chain_blocks_feed_id_source_number'))
    )
    op.create_table('chain_logs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('feed_id', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('block_hash', sa.String(length=66), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('tx_hash', sa.String(length=66), nullable=False),
    sa.Column('tx_ordinal', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_logs')),
    sa.UniqueConstraint('feed_id', 'source', 'block_hash', 'log_index', name=op.f('uq_chain_logs_feed_id_source_block_hash_log_index')),
    sa.UniqueConstraint('feed_id', 'source', 'tx_hash', 'tx_ordinal', name=op.f('uq_chain_logs_feed_id_source_tx_hash_tx_ordinal'))
    )


def downgrade() -> None:
    op.drop_table('chain_logs')
    op.drop_table('chain_blocks')
