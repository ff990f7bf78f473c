"""Problems (问题), their photos, and the append-only history of every transition."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Problem(Base):
    __tablename__ = "problems"
    __table_args__ = (
        UniqueConstraint("year", "seq", name="uq_problems_year_seq"),
        # One Telegram message (or album) makes one problem, however often it is delivered.
        UniqueConstraint("source_chat_id", "source_key", name="uq_problems_source"),
        Index("ix_problems_status_subject", "status", "subject_id"),
        # The ranking's aggregate (bot/services/tallies.py) reads only these columns: subject
        # first, so SQLite answers it from this index alone, grouped, without a sort.
        Index(
            "ix_problems_ranking",
            "subject_id",
            "assigned_at",
            "status",
            "deadline",
            "submitted_on_time",
            "submitted_at",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    year: Mapped[int]
    seq: Mapped[int]
    category: Mapped[str] = mapped_column(String(24))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    reporter_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(300))
    deadline: Mapped[datetime | None]
    extension_until: Mapped[datetime | None]
    assigned_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime | None]
    submitted_on_time: Mapped[bool | None]
    closed_at: Mapped[datetime | None]
    source_chat_id: Mapped[int | None]
    # The message id, or "g:<media_group_id>" for an album.
    source_key: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProblemPhoto(Base):
    __tablename__ = "problem_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # before | after
    file_id: Mapped[str] = mapped_column(String(255))
    file_unique_id: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[int | None]
    # Filled by the background download into the content-addressed media store.
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None]
    # Downloads Telegram refused: how often, and not to be tried again before when.
    download_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    download_after: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProblemEvent(Base):
    """One transition: who, when, what, why. Rows are only ever added."""

    __tablename__ = "problem_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), index=True)
    action: Mapped[str] = mapped_column(String(24))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    deadline: Mapped[datetime | None]
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class IntakePart(Base):
    """A photo of a group report as it arrived, before it becomes (part of) a problem.

    Album parts come as separate updates, in any order and up to seconds apart; each is written
    here first so that nothing is lost, and the album is made into one problem once it is quiet.
    """

    __tablename__ = "intake_parts"
    __table_args__ = (UniqueConstraint("chat_id", "message_id", name="uq_intake_parts_message"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int]
    message_id: Mapped[int]
    media_group_id: Mapped[str | None] = mapped_column(String(64), index=True)
    sender_telegram_id: Mapped[int]
    file_id: Mapped[str] = mapped_column(String(255))
    file_unique_id: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int | None]
    caption: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]
    done: Mapped[bool] = mapped_column(default=False)
