"""outbox: rows to one chat in the order they were written

Revision ID: 3c1f0e2b9a77
Revises: 69387c4a44cb
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '3c1f0e2b9a77'
down_revision: str | None = '69387c4a44cb'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_outbox_chat_order', 'outbox', ['chat_id', 'status', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_chat_order', table_name='outbox')
