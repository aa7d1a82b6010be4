"""model registry: followed events, scan position, and each approved version's outcome

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 00:00:00

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registry_scan',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contract', sa.String(length=42), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('block_hash', sa.String(length=66), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_scan')),
    sa.UniqueConstraint('contract', name=op.f('uq_registry_scan_contract'))
    )
    op.create_table('registry_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contract', sa.String(length=42), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('block_hash', sa.String(length=66), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('block_time_ms', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('model_id', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('spec_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('spec_uri', sa.Text(), nullable=True),
    sa.Column('feed_ids', sa.Text(), nullable=True),
    sa.Column('actor', sa.String(length=42), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_events')),
    sa.UniqueConstraint('contract', 'block_hash', 'log_index', name=op.f('uq_registry_events_contract_block_hash_log_index'))
    )
    op.create_table('registry_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('contract', sa.String(length=42), nullable=False),
    sa.Column('model_id', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('spec', sa.LargeBinary(), nullable=True),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_versions')),
    sa.UniqueConstraint('contract', 'model_id', 'version', name=op.f('uq_registry_versions_contract_model_id_version'))
    )


def downgrade() -> None:
    op.drop_table('registry_versions')
    op.drop_table('registry_events')
    op.drop_table('registry_scan')
