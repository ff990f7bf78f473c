"""claims and redemptions remember the update that decided or used them

Revision ID: 8b1d4e6f2c90
Revises: 5d2e8c41a7f3
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '8b1d4e6f2c90'
down_revision: str | None = '5d2e8c41a7f3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('activity_claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decided_update_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
    with op.batch_alter_table('redemption_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('used_update_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('redemption_codes', schema=None) as batch_op:
        batch_op.drop_column('used_update_id')
    with op.batch_alter_table('activity_claims', schema=None) as batch_op:
        batch_op.drop_column('decided_update_id')
