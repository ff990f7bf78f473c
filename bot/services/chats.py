"""Group chats and their binding to the district or one subject."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.roles import AreaKind
from models import Area, Chat


@dataclass(frozen=True)
class Binding:
    telegram_chat_id: int
    area_id: int
    area_name: str
    area_kind: AreaKind


async def _chat(session: AsyncSession, telegram_chat_id: int, title: str) -> Chat:
    chat = (
        await session.scalars(select(Chat).where(Chat.telegram_chat_id == telegram_chat_id))
    ).first()
    if chat is None:
        chat = Chat(telegram_chat_id=telegram_chat_id, title=title[:255])
        session.add(chat)
        await session.flush()
    elif title and chat.title != title[:255]:
        chat.title = title[:255]
    return chat


async def note_chat(session: AsyncSession, telegram_chat_id: int, title: str) -> None:
    """Remember a group the bot was added to (bound later)."""
    await _chat(session, telegram_chat_id, title)


async def bind_group(
    session: AsyncSession,
    telegram_chat_id: int,
    title: str,
    area_id: int,
    *,
    by_person_id: int,
    now: datetime,
) -> Binding | None:
    """Bind the group to the district or a subject; None if that area cannot be bound."""
    area = await session.get(Area, area_id)
    if area is None or AreaKind(area.kind) not in (AreaKind.district, AreaKind.subject):
        return None
    chat = await _chat(session, telegram_chat_id, title)
    chat.area_id, chat.bound_by_id, chat.bound_at = area.id, by_person_id, now
    return Binding(telegram_chat_id, area.id, area.name, AreaKind(area.kind))


async def binding_of(session: AsyncSession, telegram_chat_id: int) -> Binding | None:
    row = (
        await session.execute(
            select(Area.id, Area.name, Area.kind)
            .join(Chat, Chat.area_id == Area.id)
            .where(Chat.telegram_chat_id == telegram_chat_id)
        )
    ).first()
    if row is None:
        return None
    return Binding(telegram_chat_id, row[0], row[1], AreaKind(row[2]))


async def bound_groups(session: AsyncSession) -> list[Binding]:
    """Every group bound to the district or a subject (the weekly ranking goes to each)."""
    rows = await session.execute(
        select(Chat.telegram_chat_id, Area.id, Area.name, Area.kind)
        .join(Area, Area.id == Chat.area_id)
        .order_by(Chat.id)
    )
    return [Binding(chat, area, name, AreaKind(kind)) for chat, area, name, kind in rows]


async def groups_bound_to(session: AsyncSession, area_id: int) -> list[int]:
    """The Telegram ids of the work groups bound to ``area_id``."""
    rows = await session.scalars(
        select(Chat.telegram_chat_id).where(Chat.area_id == area_id).order_by(Chat.id)
    )
    return list(rows)


async def unbind(session: AsyncSession, telegram_chat_id: int) -> bool:
    """The bot is no longer in the group: forget its binding, so that nothing is written for
    it any more (it is bound again with /bindgroup once the bot is back). True if it was bound."""
    chat = (
        await session.scalars(select(Chat).where(Chat.telegram_chat_id == telegram_chat_id))
    ).first()
    if chat is None or chat.area_id is None:
        return False
    chat.area_id, chat.bound_by_id, chat.bound_at = None, None, None
    return True


async def titles(session: AsyncSession, telegram_chat_ids: list[int]) -> dict[int, str]:
    """The groups' titles as the bot last saw them (empty when it never saw one)."""
    if not telegram_chat_ids:
        return {}
    rows = await session.execute(
        select(Chat.telegram_chat_id, Chat.title).where(
            Chat.telegram_chat_id.in_(set(telegram_chat_ids))
        )
    )
    return {chat_id: title for chat_id, title in rows if title}
