"""What is due: each liaison's problems due soon or overdue, each group's overdue list per
subject, and the problems overdue long enough to tell the leaders.

Overdue is derived as everywhere else (open and past its deadline); how many days overdue is
counted in local calendar days, because people think of deadlines as dates.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.problem_machine import OPEN_STATUSES, Status, days_overdue
from bot.services.roles import AreaKind, Role
from models import Area, Chat, Person, Problem, RoleGrant


@dataclass(frozen=True)
class Due:
    code: str
    category: str
    subject_id: int
    subject_name: str
    deadline: datetime
    status: Status
    overdue_days: int  # 0 while not overdue


@dataclass(frozen=True)
class Liaison:
    telegram_id: int
    name: str


@dataclass
class LiaisonDigest:
    telegram_id: int
    locale: str | None
    overdue: list[Due] = field(default_factory=list)
    due_soon: list[Due] = field(default_factory=list)


@dataclass(frozen=True)
class SubjectOverdue:
    subject_name: str
    problems: list[Due]
    liaisons: list[Liaison]


@dataclass(frozen=True)
class GroupOverdue:
    chat_id: int
    subjects: list[SubjectOverdue]


def is_due_soon(deadline: datetime, now: datetime, within: timedelta) -> bool:
    """Not yet past, and due within ``within`` (both edges included)."""
    return now <= deadline <= now + within


async def _open_problems(
    session: AsyncSession, now: datetime, zone: tzinfo, within: timedelta
) -> list[Due]:
    """Open problems with a deadline up to ``now + within``: overdue or due soon."""
    rows = await session.execute(
        select(
            Problem.code,
            Problem.category,
            Problem.subject_id,
            Area.name,
            Problem.deadline,
            Problem.status,
        )
        .join(Area, Area.id == Problem.subject_id)
        .where(
            Problem.status.in_([s.value for s in OPEN_STATUSES]),
            Problem.deadline.is_not(None),
            Problem.deadline <= now + within,
        )
        .order_by(Problem.deadline, Problem.code)
    )
    return [
        Due(
            code,
            category,
            subject,
            name,
            deadline,
            Status(status),
            days_overdue(deadline, now, zone),
        )
        for code, category, subject, name, deadline, status in rows
        if subject is not None and deadline is not None  # the query guarantees both
    ]


async def subject_liaisons(session: AsyncSession) -> dict[int, list[tuple[Liaison, str | None]]]:
    """subject id → its liaisons, with each one's locale."""
    rows = await session.execute(
        select(RoleGrant.area_id, Person.telegram_id, Person.full_name, Person.locale)
        .join(Person, Person.id == RoleGrant.person_id)
        .where(RoleGrant.role == Role.liaison.value, RoleGrant.area_id.is_not(None))
        .order_by(Person.telegram_id)
    )
    found: dict[int, list[tuple[Liaison, str | None]]] = defaultdict(list)
    for area_id, telegram_id, name, locale in rows:
        if area_id is not None:  # the query guarantees it
            found[area_id].append((Liaison(telegram_id, name), locale))
    return found


async def liaison_digests(
    session: AsyncSession, now: datetime, zone: tzinfo, within: timedelta
) -> list[LiaisonDigest]:
    """One digest per liaison with something to rectify that is overdue or due soon. A problem
    waiting for its check is left out: the liaison has done their part."""
    due = [
        d for d in await _open_problems(session, now, zone, within) if d.status is Status.rectifying
    ]
    liaisons = await subject_liaisons(session)
    digests: dict[int, LiaisonDigest] = {}
    for item in due:
        for liaison, locale in liaisons.get(item.subject_id, []):
            digest = digests.setdefault(
                liaison.telegram_id, LiaisonDigest(liaison.telegram_id, locale)
            )
            (digest.overdue if item.overdue_days else digest.due_soon).append(item)
    for digest in digests.values():
        digest.overdue.sort(key=lambda d: (-d.overdue_days, d.code))
    return sorted(digests.values(), key=lambda d: d.telegram_id)


async def group_overdue(session: AsyncSession, now: datetime, zone: tzinfo) -> list[GroupOverdue]:
    """For each bound group: the overdue problems of its subject (of every subject, for a
    group bound to the district), per subject, with that subject's liaisons."""
    overdue = [d for d in await _open_problems(session, now, zone, timedelta(0)) if d.overdue_days]
    if not overdue:
        return []
    liaisons = await subject_liaisons(session)
    groups = await session.execute(
        select(Chat.telegram_chat_id, Area.id, Area.kind)
        .join(Area, Area.id == Chat.area_id)
        .order_by(Chat.telegram_chat_id)
    )
    result = []
    for chat_id, area_id, kind in groups:
        by_subject: dict[int, list[Due]] = defaultdict(list)
        for d in overdue:
            if kind == AreaKind.district.value or d.subject_id == area_id:
                by_subject[d.subject_id].append(d)
        if not by_subject:
            continue
        subjects = [
            SubjectOverdue(
                items[0].subject_name,
                sorted(items, key=lambda d: (-d.overdue_days, d.code)),
                [liaison for liaison, _ in liaisons.get(subject_id, [])],
            )
            for subject_id, items in by_subject.items()
        ]
        subjects.sort(key=lambda s: (-s.problems[0].overdue_days, s.subject_name))
        result.append(GroupOverdue(chat_id, subjects))
    return result


async def escalations(
    session: AsyncSession, now: datetime, zone: tzinfo, after_days: int
) -> list[Due]:
    """Problems overdue by more than ``after_days`` days, longest first: the leaders are told."""
    found = [
        d
        for d in await _open_problems(session, now, zone, timedelta(0))
        if d.overdue_days > after_days
    ]
    return sorted(found, key=lambda d: (-d.overdue_days, d.code))


async def leaders(session: AsyncSession) -> list[tuple[int, str | None]]:
    """Every leader as (telegram id, locale)."""
    rows = await session.execute(
        select(Person.telegram_id, Person.locale)
        .join(RoleGrant, RoleGrant.person_id == Person.id)
        .where(RoleGrant.role == Role.leader.value)
        .distinct()
        .order_by(Person.telegram_id)
    )
    return [(tid, locale) for tid, locale in rows]
