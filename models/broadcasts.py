"""Scheduled work done per period, and announcements to the work groups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class ScheduleRun(Base):
    """A scheduled job's period that has been written (its outbox rows, if any): a job that
    could not run at its time (the bot was down, quiet hours) catches up on a period with no
    row here, and never on one with a row."""

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("job", "period", name="uq_schedule_runs_job_period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(40))
    period: Mapped[str] = mapped_column(String(40))  # 2026-11-23, 2026-W48, 2026-11
    done_at: Mapped[datetime] = mapped_column(default=utcnow)


class Announcement(Base):
    """An admin's notice (法律法规、典型案例、环保知识) for one bound group or all of them.

    queued → released (outbox rows written for the groups bound at ``send_at``), cancelled (by
    an admin before that; kept, with who and when), or dropped (its one group was no longer
    bound at the time; the admin who queued it is told)."""

    __tablename__ = "announcements"
    __table_args__ = (Index("ix_announcements_status_send_at", "status", "send_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    # None: every group bound at the time of sending.
    target_chat_id: Mapped[int | None]
    text: Mapped[str] = mapped_column(Text, default="")
    photo_file_id: Mapped[str | None] = mapped_column(String(255))
    send_at: Mapped[datetime]
    # "Now" goes at once even in quiet hours; a chosen time waits for their end.
    respects_quiet_hours: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None]
    recipients: Mapped[int | None]  # groups written to when released
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    cancelled_at: Mapped[datetime | None]
