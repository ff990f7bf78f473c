"""The outbox: every scheduled message is a row first, then sent by whoever claims it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "not_before"),
        # A row waits for the earlier rows to its chat (the claim looks them up by this).
        Index("ix_outbox_chat_order", "chat_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # kind:recipient:period — the same reminder for the same person and day is one row.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[int]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|sent|gave_up
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime]
    # Set while a sender works on the row; a lease that ran out (a killed sender) frees it.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    respects_quiet_hours: Mapped[bool] = mapped_column(default=True)
    sent_at: Mapped[datetime | None]
    telegram_message_id: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
