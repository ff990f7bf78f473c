"""The inbox: every Telegram update as it arrived, written before Telegram is told it was
received, and processed from here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class InboxUpdate(Base):
    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_status_update", "status", "update_id"),
        Index("ix_inbox_lane_update", "lane", "update_id"),
    )

    # Telegram's own id: a redelivered update is the same row.
    update_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    # The chat (or, without one, the user) whose updates are processed strictly in order.
    lane: Mapped[int]
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(8), default="pending")  # pending|done|parked
    attempts: Mapped[int] = mapped_column(default=0)
    next_try_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    received_via: Mapped[str] = mapped_column(String(8))  # polling|webhook
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    processed_by: Mapped[str | None] = mapped_column(String(80))
