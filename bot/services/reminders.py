"""What is due: each liaison's problems due within 48 hours or overdue, each group's overdue
list per subject, and the problems overdue long enough to tell the leaders."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.problem_machine import OPEN_STATUSES
from bot.services.roles import AreaKind, Role
from models import Area, Chat, Person, Problem, RoleGrant

DUE_SOON = timedelta(hours=48)


@dataclass(frozen=True)
class Due:
    code: str
    subject_id: int
    subject_name: str
    deadline: datetime
    overdue_days: float  # 0 when not yet due


@dataclass
class LiaisonDigest:
    telegram_id: int
    locale: str | None
    due_soon: list[Due] = field(default_factory=list)
    overdue: list[Due] = field(default_factory=list)


@dataclass
class GroupOverdue:
    chat_id: int
    # subject name → (its overdue problems, its liaisons as (telegram id, name))
    by_subject: dict[str, tuple[list[Due], list[tuple[int, str]]]] = field(default_factory=dict)


async def _open_with_deadline(session: AsyncSession, now: datetime) -> list[Due]:
    rows = await session.execute(
        select(Problem.code, Problem.subject_id, Area.name, Problem.deadline)
        .join(Area, Area.id == Problem.subject_id)
        .where(
            Problem.status.in_([s.value for s in OPEN_STATUSES]),
            Problem.deadline.is_not(None),
            Problem.deadline <= now + DUE_SOON,
        )
        .order_by(Problem.deadline, Problem.code)
    )
    return [
        Due(code, subject_id, name, deadline, max(0.0, (now - deadline).total_seconds() / 86400))
        for code, subject_id, name, deadline in rows
        if subject_id is not None and deadline is not None  # the query guarantees both
    ]


def is_overdue(due: Due, now: datetime) -> bool:
    return now > due.deadline


async def _liaisons(session: AsyncSession) -> dict[int, list[tuple[int, str, str | None]]]:
    """subject id → [(telegram id, name, locale)]."""
    rows = await session.execute(
        select(RoleGrant.area_id, Person.telegram_id, Person.full_name, Person.locale)
        .join(Person, Person.id == RoleGrant.person_id)
        .where(RoleGrant.role == Role.liaison.value)
        .order_by(Person.telegram_id)
    )
    found: dict[int, list[tuple[int, str, str | None]]] = defaultdict(list)
    for area_id, telegram_id, name, locale in rows:
        if area_id is not None:
            found[area_id].append((telegram_id, name, locale))
    return found


async def liaison_digests(session: AsyncSession, now: datetime) -> list[LiaisonDigest]:
    """One digest per liaison who has something due soon or overdue (one message each)."""
    due = await _open_with_deadline(session, now)
    liaisons = await _liaisons(session)
    digests: dict[int, LiaisonDigest] = {}
    for item in due:
        for telegram_id, _name, locale in liaisons.get(item.subject_id, []):
            digest = digests.setdefault(telegram_id, LiaisonDigest(telegram_id, locale))
            (digest.overdue if is_overdue(item, now) else digest.due_soon).append(item)
    return sorted(digests.values(), key=lambda d: d.telegram_id)


async def group_overdue(session: AsyncSession, now: datetime) -> list[GroupOverdue]:
    """For each bound group: the overdue problems of its subject (or of every subject, for a
    group bound to the district), grouped by subject, with that subject's liaisons."""
    overdue = [d for d in await _open_with_deadline(session, now) if is_overdue(d, now)]
    if not overdue:
        return []
    liaisons = await _liaisons(session)
    groups = await session.execute(
        select(Chat.telegram_chat_id, Area.id, Area.kind).join(Area, Area.id == Chat.area_id)
    )
    result = []
    for chat_id, area_id, kind in groups:
        mine = [d for d in overdue if kind == AreaKind.district.value or d.subject_id == area_id]
        if not mine:
            continue
        entry = GroupOverdue(chat_id)
        for item in mine:
            problems, _people = entry.by_subject.setdefault(
                item.subject_name,
                ([], [(tid, name) for tid, name, _ in liaisons.get(item.subject_id, [])]),
            )
            problems.append(item)
        result.append(entry)
    return result


async def escalations(session: AsyncSession, now: datetime, after_days: int) -> list[Due]:
    """Problems overdue by more than ``after_days`` days: the leaders are told."""
    return [
        d
        for d in await _open_with_deadline(session, now)
        if is_overdue(d, now) and d.overdue_days > after_days
    ]


async def leaders(session: AsyncSession) -> list[tuple[int, str | None]]:
    rows = await session.execute(
        select(Person.telegram_id, Person.locale)
        .join(RoleGrant, RoleGrant.person_id == Person.id)
        .where(RoleGrant.role == Role.leader.value)
        .distinct()
        .order_by(Person.telegram_id)
    )
    return [(tid, locale) for tid, locale in rows]
