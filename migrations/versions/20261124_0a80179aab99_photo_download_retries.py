"""photo download retries: attempts and the earliest next try

Revision ID: 0a80179aab99
Revises: 762d9588e237
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = '0a80179aab99'
down_revision: str | None = '762d9588e237'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('problem_photos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('download_attempts', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('download_after', models.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('problem_photos', schema=None) as batch_op:
        batch_op.drop_column('download_after')
        batch_op.drop_column('download_attempts')
