"""The organisation: areas (district → subject → village), people and their roles."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class Area(Base):
    __tablename__ = "areas"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # district | subject | village
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_id: Mapped[int] = mapped_column(unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    username: Mapped[str | None] = mapped_column(String(64))
    # None: the deployment's default locale; set only when the person chose one with /lang.
    locale: Mapped[str | None] = mapped_column(String(8))
    # Whether the person has opened a private chat with the bot (the bot may write to them);
    # False again once Telegram refuses a message to them (they blocked the bot).
    started_private: Mapped[bool] = mapped_column(default=False)
    # When the admins were told this leader cannot be written to (once, until they start the
    # bot again).
    unreachable_reported_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoleGrant(Base):
    __tablename__ = "role_grants"
    __table_args__ = (
        UniqueConstraint("person_id", "role", "area_id", name="uq_role_grants_person_role_area"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    # The district for district-wide roles; None only for configured admins before any import.
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    invite_id: Mapped[int | None] = mapped_column(ForeignKey("invites.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invite(Base):
    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    max_uses: Mapped[int | None]  # None: any number of people
    use_count: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InviteUse(Base):
    __tablename__ = "invite_uses"
    __table_args__ = (UniqueConstraint("invite_id", "person_id", name="uq_invite_uses_once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invite_id: Mapped[int] = mapped_column(ForeignKey("invites.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    used_at: Mapped[datetime] = mapped_column(default=utcnow)


class Chat(Base):
    """A group chat the bot is in; bound to the district or one subject by an admin."""

    __tablename__ = "chats"
    __table_args__ = (Index("ix_chats_area", "area_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    telegram_chat_id: Mapped[int] = mapped_column(unique=True)
    title: Mapped[str] = mapped_column(String(255), default="")
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    bound_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    bound_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
