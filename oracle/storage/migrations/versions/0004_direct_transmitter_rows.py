"""direct transmitter removed: its rows in transmissions become manager states

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 00:00:00

The removed "direct" transmitter claimed reports in the same ``transmissions`` table as
the transaction manager, without the call columns (``to_address`` is NULL) and with its
own status words (claimed, sending, landed, already_applied, reverted, rejected, unknown).
The manager reads every status of its sender as a ``State``, so such a row would stop it
on a node that used the direct path before. Each row is kept (its tx hash and nonce are
the node's history) and given the manager's terminal state that says what it was: a
report that landed is ``confirmed``; anything else is ``failed`` with the old status in
``error``. No row is ever resumed: the manager only resumes rows it wrote (with a call).
"""

from __future__ import annotations

from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_MANAGER_STATES = (
    "'queued', 'simulated', 'sent', 'included', 'confirmed', 'failed', 'dropped', 'superseded'"
)


def upgrade() -> None:
    op.execute(
        "UPDATE transmissions SET status = 'confirmed' "
        "WHERE to_address IS NULL AND status = 'landed'"
    )
    op.execute(
        "UPDATE transmissions SET "
        "error = 'direct transmitter (removed): ' || status, status = 'failed' "
        f"WHERE to_address IS NULL AND status NOT IN ({_MANAGER_STATES})"
    )


def downgrade() -> None:
    # The old statuses are not restored: the direct transmitter reads a row only to know
    # that the report was sent before, which a manager state says as well.
    pass
