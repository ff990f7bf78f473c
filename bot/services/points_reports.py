"""What the ledger says: a volunteer's statement (/points), the month's ranks and leaderboards
per village, and volunteer activity in a window (for the leaders' summary)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.points import EARNINGS, MONTH_KINDS, Entry, Kind, balance_of, entries_of
from bot.services.points_rules import competition_ranks, month_window
from bot.services.roles import Role
from models import ActivityClaim, Area, Chat, Person, PointsEntry, RoleGrant


async def volunteer_village(session: AsyncSession, person_id: int) -> tuple[int, str] | None:
    """The village a volunteer belongs to (their first volunteer grant)."""
    row = (
        await session.execute(
            select(Area.id, Area.name)
            .join(RoleGrant, RoleGrant.area_id == Area.id)
            .where(RoleGrant.person_id == person_id, RoleGrant.role == Role.volunteer.value)
            .order_by(RoleGrant.id)
            .limit(1)
        )
    ).first()
    return None if row is None else (int(row[0]), str(row[1]))


async def month_scores(
    session: AsyncSession, start: datetime, end: datetime, village_ids: list[int] | None = None
) -> dict[int, dict[int, tuple[str, int]]]:
    """village id → {person id → (name, points earned in [start, end))} for every volunteer,
    those who earned nothing included (they count in "rank 3 of 7")."""
    members = select(RoleGrant.area_id, Person.id, Person.full_name).join(
        Person, Person.id == RoleGrant.person_id
    )
    members = members.where(RoleGrant.role == Role.volunteer.value)
    if village_ids is not None:
        members = members.where(RoleGrant.area_id.in_(village_ids))
    board: dict[int, dict[int, tuple[str, int]]] = {}
    person_ids: set[int] = set()
    for area_id, person_id, name in await session.execute(members):
        if area_id is not None:
            board.setdefault(area_id, {})[person_id] = (name, 0)
            person_ids.add(person_id)
    if not person_ids:
        return board
    sums = await session.execute(
        select(PointsEntry.person_id, func.sum(PointsEntry.amount))
        .where(
            PointsEntry.person_id.in_(person_ids),
            PointsEntry.kind.in_([k.value for k in MONTH_KINDS]),
            PointsEntry.at >= start,
            PointsEntry.at < end,
        )
        .group_by(PointsEntry.person_id)
    )
    earned = {person_id: int(total or 0) for person_id, total in sums}
    for people in board.values():
        for person_id, (name, _zero) in people.items():
            people[person_id] = (name, earned.get(person_id, 0))
    return board


@dataclass(frozen=True)
class Statement:
    balance: int
    earned_month: int
    entries: list[Entry]
    village_name: str | None
    rank: int | None
    volunteers: int  # how many are ranked in the village


async def statement(
    session: AsyncSession, person_id: int, *, now: datetime, zone: tzinfo, recent: int = 10
) -> Statement:
    """What /points shows: the balance, this month's earnings, the latest entries, and the
    rank among the village's volunteers this month."""
    start, end = month_window(now, zone)
    village = await volunteer_village(session, person_id)
    earned_month = int(
        await session.scalar(
            select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
                PointsEntry.person_id == person_id,
                PointsEntry.kind.in_([k.value for k in MONTH_KINDS]),
                PointsEntry.at >= start,
                PointsEntry.at < end,
            )
        )
        or 0
    )
    rank, volunteers = None, 0
    if village is not None:
        scores = (await month_scores(session, start, end, [village[0]])).get(village[0], {})
        ranks = competition_ranks({pid: score for pid, (_n, score) in scores.items()})
        rank, volunteers = ranks.get(person_id), len(ranks)
    return Statement(
        await balance_of(session, person_id),
        earned_month,
        await entries_of(session, person_id, limit=recent),
        village[1] if village else None,
        rank,
        volunteers,
    )


@dataclass(frozen=True)
class BoardLine:
    rank: int
    name: str
    points: int


@dataclass(frozen=True)
class VillageBoard:
    village_id: int
    village_name: str
    lines: list[BoardLine]


async def leaderboard(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    village_ids: list[int] | None = None,
    *,
    top: int = 10,
) -> list[VillageBoard]:
    """Per village (by code): the volunteers who earned points in [start, end), best first."""
    query = select(Area.id, Area.name).where(Area.kind == "village").order_by(Area.code)
    if village_ids is not None:
        query = query.where(Area.id.in_(village_ids))
    villages = (await session.execute(query)).all()
    scores = await month_scores(session, start, end, [v for v, _ in villages])
    boards = []
    for village_id, name in villages:
        people = scores.get(village_id, {})
        ranks = competition_ranks({pid: s for pid, (_n, s) in people.items()})
        ordered = sorted(
            ((ranks[pid], n, s) for pid, (n, s) in people.items() if s > 0),
            key=lambda line: (line[0], line[1]),
        )
        boards.append(
            VillageBoard(village_id, name, [BoardLine(r, n, s) for r, n, s in ordered[:top]])
        )
    return boards


@dataclass(frozen=True)
class VolunteerActivity:
    """Volunteer activity in a window, for the leaders' summary."""

    claims_submitted: int
    claims_approved: int
    claims_refused: int
    points_earned: int  # earnings credited (problems and claims)
    points_reversed: int  # taken back from rejected problems (a positive number)
    points_redeemed: int  # spent at shops (a positive number)
    redemptions: int
    volunteers_earning: int  # people with any earning in the window


async def volunteer_activity(
    session: AsyncSession, start: datetime, end: datetime
) -> VolunteerActivity:
    """Claims decided in [start, end) (by the time of the decision; submitted by their own
    time), and points earned, taken back and redeemed in it, by the time of the entry."""

    async def count_claims(status: str | None) -> int:
        column = ActivityClaim.created_at if status is None else ActivityClaim.decided_at
        query = select(func.count()).select_from(ActivityClaim).where(column >= start, column < end)
        if status is not None:
            query = query.where(ActivityClaim.status == status)
        return int(await session.scalar(query) or 0)

    in_window = (PointsEntry.at >= start, PointsEntry.at < end)
    sums = {
        kind: (int(total or 0), int(count or 0), int(people or 0))
        for kind, total, count, people in await session.execute(
            select(
                PointsEntry.kind,
                func.sum(PointsEntry.amount),
                func.count(),
                func.count(func.distinct(PointsEntry.person_id)),
            )
            .where(*in_window)
            .group_by(PointsEntry.kind)
        )
    }
    earners = await session.scalar(
        select(func.count(func.distinct(PointsEntry.person_id))).where(
            *in_window,
            PointsEntry.kind.in_([k.value for k in EARNINGS]),
            PointsEntry.amount > 0,
        )
    )
    return VolunteerActivity(
        claims_submitted=await count_claims(None),
        claims_approved=await count_claims("approved"),
        claims_refused=await count_claims("refused"),
        points_earned=sum(sums.get(k.value, (0, 0, 0))[0] for k in EARNINGS),
        points_reversed=-sums.get(Kind.problem_reversed.value, (0, 0, 0))[0],
        points_redeemed=-sums.get(Kind.redemption.value, (0, 0, 0))[0],
        redemptions=sums.get(Kind.redemption.value, (0, 0, 0))[1],
        volunteers_earning=int(earners or 0),
    )


async def villages_under(session: AsyncSession, area_id: int) -> list[int]:
    """The villages of a subject, or every village for the district (or a village itself)."""
    area = await session.get(Area, area_id)
    if area is None:
        return []
    if area.kind == "village":
        return [area.id]
    query = select(Area.id).where(Area.kind == "village")
    if area.kind == "subject":
        query = query.where(Area.parent_id == area.id)
    return list(await session.scalars(query.order_by(Area.code)))


async def bound_groups_villages(session: AsyncSession) -> list[tuple[int, list[int]]]:
    """Each bound group's Telegram chat id with the villages under its area (the leaderboard
    each one gets), leaving out groups with no village under them."""
    rows = (
        await session.execute(
            select(Chat.telegram_chat_id, Chat.area_id)
            .where(Chat.area_id.is_not(None))
            .order_by(Chat.telegram_chat_id)
        )
    ).all()
    found = []
    for chat_id, area_id in rows:
        villages = await villages_under(session, area_id) if area_id is not None else []
        if villages:
            found.append((int(chat_id), villages))
    return found
