"""schedule runs, announcements, unreachable leaders reported

Revision ID: 5d2e8c41a7f3
Revises: 3c1f0e2b9a77
Create Date: 2026-11-24 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = '5d2e8c41a7f3'
down_revision: str | None = '3c1f0e2b9a77'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'schedule_runs',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('job', sa.String(length=40), nullable=False),
        sa.Column('period', sa.String(length=40), nullable=False),
        sa.Column('done_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_runs')),
        sa.UniqueConstraint('job', 'period', name='uq_schedule_runs_job_period'),
    )
    op.create_table(
        'announcements',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column(
            'target_chat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True
        ),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('photo_file_id', sa.String(length=255), nullable=True),
        sa.Column('send_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('respects_quiet_hours', sa.Boolean(), nullable=False),
        sa.Column(
            'created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False
        ),
        sa.Column('created_at', models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('released_at', models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('recipients', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.Column(
            'cancelled_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True
        ),
        sa.Column('cancelled_at', models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['cancelled_by_id'], ['people.id'], name=op.f('fk_announcements_cancelled_by_id_people')
        ),
        sa.ForeignKeyConstraint(
            ['created_by_id'], ['people.id'], name=op.f('fk_announcements_created_by_id_people')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_announcements')),
    )
    op.create_index(
        'ix_announcements_status_send_at', 'announcements', ['status', 'send_at'], unique=False
    )
    with op.batch_alter_table('people') as batch:
        batch.add_column(
            sa.Column(
                'unreachable_reported_at', models.base.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('people') as batch:
        batch.drop_column('unreachable_reported_at')
    op.drop_index('ix_announcements_status_send_at', table_name='announcements')
    op.drop_table('announcements')
    op.drop_table('schedule_runs')
