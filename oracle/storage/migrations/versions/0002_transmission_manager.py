"""transaction manager: call columns and outcome on transmissions, tx_attempts, tx_nonces

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

_NEW_COLUMNS = [
    ('to_address', sa.String(length=42)),
    ('data', sa.LargeBinary()),
    ('value_wei', sa.String(length=78)),
    ('gas_limit', sa.BigInteger()),
    ('max_fee_cap_wei', sa.String(length=78)),
    ('error', sa.Text()),
    ('last_sent_block', sa.BigInteger()),
    ('included_block', sa.BigInteger()),
    ('included_block_hash', sa.LargeBinary(length=32)),
    ('receipt_status', sa.Integer()),
    ('gas_used', sa.BigInteger()),
    ('effective_gas_price_wei', sa.String(length=78)),
    ('l1_fee_wei', sa.String(length=78)),
    ('confirmed_at_ms', sa.BigInteger()),
]


def upgrade() -> None:
    with op.batch_alter_table('transmissions', schema=None) as batch_op:
        for name, type_ in _NEW_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.add_column(
            sa.Column('cancelling', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(batch_op.f('ix_transmissions_status'), ['status'], unique=False)

    op.create_table('tx_attempts',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('transmission_id', _ID, nullable=False),
    sa.Column('nonce', sa.BigInteger(), nullable=False),
    sa.Column('tx_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('raw_tx', sa.LargeBinary(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('max_fee_per_gas_wei', sa.String(length=78), nullable=False),
    sa.Column('max_priority_fee_per_gas_wei', sa.String(length=78), nullable=False),
    sa.Column('gas_limit', sa.BigInteger(), nullable=False),
    sa.Column('l1_fee_wei', sa.String(length=78), nullable=True),
    sa.Column('broadcast_block', sa.BigInteger(), nullable=True),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_at_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['transmission_id'], ['transmissions.id'], name=op.f('fk_tx_attempts_transmission_id_transmissions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tx_attempts')),
    sa.UniqueConstraint('tx_hash', name=op.f('uq_tx_attempts_tx_hash'))
    )
    with op.batch_alter_table('tx_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tx_attempts_transmission_id'), ['transmission_id'], unique=False)

    op.create_table('tx_nonces',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('address', sa.String(length=42), nullable=False),
    sa.Column('next_nonce', sa.BigInteger(), nullable=False),
    sa.Column('updated_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tx_nonces')),
    sa.UniqueConstraint('chain_id', 'address', name=op.f('uq_tx_nonces_chain_id_address'))
    )


def downgrade() -> None:
    op.drop_table('tx_nonces')
    with op.batch_alter_table('tx_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tx_attempts_transmission_id'))
    op.drop_table('tx_attempts')
    with op.batch_alter_table('transmissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transmissions_status'))
        batch_op.drop_column('cancelling')
        for name, _ in reversed(_NEW_COLUMNS):
            batch_op.drop_column(name)
