"""Conversations in progress, one per person, stored with each step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Draft


@dataclass
class DraftView:
    id: int
    kind: str
    step: str
    data: dict[str, Any] = field(default_factory=dict)


async def current(session: AsyncSession, person_id: int) -> DraftView | None:
    draft = (await session.scalars(select(Draft).where(Draft.person_id == person_id))).first()
    if draft is None:
        return None
    return DraftView(draft.id, draft.kind, draft.step, dict(draft.data or {}))


async def start(
    session: AsyncSession,
    person_id: int,
    kind: str,
    step: str,
    data: dict[str, Any],
    now: datetime,
) -> DraftView:
    """Begin a conversation, replacing any other the person had."""
    await session.execute(delete(Draft).where(Draft.person_id == person_id))
    draft = Draft(person_id=person_id, kind=kind, step=step, data=data, updated_at=now)
    session.add(draft)
    await session.flush()
    return DraftView(draft.id, kind, step, dict(data))


async def save(
    session: AsyncSession, person_id: int, step: str, data: dict[str, Any], now: datetime
) -> None:
    draft = (await session.scalars(select(Draft).where(Draft.person_id == person_id))).first()
    if draft is not None:
        # A new dict, so that SQLAlchemy sees the JSON column change.
        draft.step, draft.data, draft.updated_at = step, dict(data), now


async def finish(session: AsyncSession, person_id: int) -> None:
    await session.execute(delete(Draft).where(Draft.person_id == person_id))
