"""The leaders' summary (DESIGN.md §7) as figures over a window: one domain function, the text
is the caller's (per locale).

It reads what the ranking and the reminders already read, never a query of its own for the same
thing: ``tallies.window_flows`` for what happened (reported, assigned, closed, gone overdue),
``tallies.window_counts`` + ``ranking.rank_subjects`` for the 晾晒 and its red subjects (with
the moves since the last posted ranking from ``snapshots``), ``reminders.escalations`` for the
problems overdue now, ``points_reports.volunteer_activity`` for the volunteers.

A window that has not ended (this week so far) is compared with the same stretch of the window
before (Monday to the same time last week), so that a part week is never set against a whole
one. The ranking is the one everybody sees with /rank: the rules' ranking window that holds the
summary's last day, as of now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.rules import Rules
from bot.services import points_reports, reminders, snapshots, tallies
from bot.services.points_reports import VolunteerActivity
from bot.services.problem_machine import Status
from bot.services.ranking import Change, Code, Standings, rank_changes, rank_subjects
from bot.services.roles import Role
from bot.services.tallies import SubjectFlows
from bot.services.windows import Window, WindowKind, period
from models import Person, RoleGrant

LONGEST = 5  # the longest-overdue problems listed


@dataclass(frozen=True)
class Trend:
    """One figure in the window and in the window before."""

    now: int
    before: int

    @property
    def change(self) -> int:
        return self.now - self.before


@dataclass(frozen=True)
class OverdueProblem:
    code: str
    subject_name: str
    category: str
    overdue_days: int
    awaiting_check: bool  # submitted, waiting for its check
    liaisons: list[str]


@dataclass(frozen=True)
class Summary:
    window: Window
    until: datetime  # the window counted up to here (its end, or now)
    previous: Window
    previous_until: datetime
    as_of: datetime
    reported: Trend
    assigned: Trend
    closed: Trend
    went_overdue: Trend
    overdue_now: int  # open and past the deadline now, every subject
    longest_overdue: list[OverdueProblem]
    ranking_window: Window
    standings: Standings
    changes: dict[int, Change]
    claims_approved: Trend
    points_earned: Trend
    points_redeemed: Trend
    volunteers: VolunteerActivity  # the window's, in full

    @property
    def red(self) -> list[tuple[str, tuple[str, ...]]]:
        """The red subjects and the kinds of reason, ranked ones first."""
        rows = [r for r in self.standings.ranked + self.standings.apart if r.code is Code.red]
        return [(r.name, tuple(reason.kind for reason in r.reasons)) for r in rows]


def previous_window(window: Window, zone: tzinfo) -> Window:
    """The window before: the calendar period before, or as many days before a range."""
    if window.kind is WindowKind.range:
        days = (window.last - window.first).days + 1
        return Window.of(
            WindowKind.range,
            window.first - timedelta(days=days),
            window.first - timedelta(days=1),
            zone,
        )
    return period(window.kind, window.first - timedelta(days=1), zone)


def stretches(window: Window, now: datetime, zone: tzinfo) -> tuple[datetime, Window, datetime]:
    """How far the window is counted (its end, or now if it has not ended), the window before,
    and how far that one is counted: the same stretch from its start, within it."""
    until = min(window.end, now)
    previous = previous_window(window, zone)
    return until, previous, min(previous.end, previous.start + (until - window.start))


def _sum(flows: dict[int | None, SubjectFlows]) -> SubjectFlows:
    values = list(flows.values())
    return SubjectFlows(
        None,
        sum(f.reported for f in values),
        sum(f.assigned for f in values),
        sum(f.closed for f in values),
        sum(f.overdue for f in values),
    )


async def leader_summary(
    session: AsyncSession, window: Window, *, now: datetime, zone: tzinfo, rules: Rules
) -> Summary:
    """Every figure of the summary over ``window`` (counted up to ``now`` at most)."""
    until, previous, previous_until = stretches(window, now, zone)
    flows = _sum(await tallies.window_flows(session, window, until))
    before = _sum(await tallies.window_flows(session, previous, previous_until))

    last_day = (until - timedelta(microseconds=1)).astimezone(zone).date()
    ranking_window = period(WindowKind(rules.ranking.window), last_day, zone)
    counts = await tallies.window_counts(session, ranking_window, now, zone)
    standings = rank_subjects(counts.subjects, rules.ranking)
    posted = await snapshots.latest_posted(session, zone)
    same = posted is not None and (posted.window.kind, posted.window.first) == (
        ranking_window.kind,
        ranking_window.first,
    )
    changes = rank_changes(standings, snapshots.ranks_of(posted) if same else None)

    overdue = await reminders.escalations(session, now, zone, 0)
    liaisons = await reminders.subject_liaisons(session)
    longest = [
        OverdueProblem(
            d.code,
            d.subject_name,
            d.category,
            d.overdue_days,
            d.status is Status.pending_check,
            [liaison.name for liaison, _locale in liaisons.get(d.subject_id, [])],
        )
        for d in overdue[:LONGEST]
    ]

    volunteers = await points_reports.volunteer_activity(session, window.start, until)
    volunteers_before = await points_reports.volunteer_activity(
        session, previous.start, previous_until
    )
    return Summary(
        window=window,
        until=until,
        previous=previous,
        previous_until=previous_until,
        as_of=now,
        reported=Trend(flows.reported, before.reported),
        assigned=Trend(flows.assigned, before.assigned),
        closed=Trend(flows.closed, before.closed),
        went_overdue=Trend(flows.overdue, before.overdue),
        overdue_now=len(overdue),
        longest_overdue=longest,
        ranking_window=ranking_window,
        standings=standings,
        changes=changes,
        claims_approved=Trend(volunteers.claims_approved, volunteers_before.claims_approved),
        points_earned=Trend(volunteers.points_earned, volunteers_before.points_earned),
        points_redeemed=Trend(volunteers.points_redeemed, volunteers_before.points_redeemed),
        volunteers=volunteers,
    )


# ---------------------------------------------------------------- who gets it


@dataclass(frozen=True)
class Leader:
    person_id: int
    telegram_id: int
    name: str
    locale: str | None
    reachable: bool  # has opened the bot privately (and not blocked it since)


async def leaders(session: AsyncSession) -> list[Leader]:
    rows = await session.execute(
        select(
            Person.id, Person.telegram_id, Person.full_name, Person.locale, Person.started_private
        )
        .join(RoleGrant, RoleGrant.person_id == Person.id)
        .where(RoleGrant.role == Role.leader.value)
        .distinct()
        .order_by(Person.telegram_id)
    )
    return [
        Leader(pid, tid, name, locale, bool(started)) for pid, tid, name, locale, started in rows
    ]


async def note_unreachable(
    session: AsyncSession, person_ids: list[int], *, now: datetime
) -> list[tuple[int, str]]:
    """Mark these leaders as reported unreachable; the (telegram id, name) of those not marked
    before, whom the admins are to be told of (once: until they start the bot again)."""
    if not person_ids:
        return []
    rows = await session.execute(
        update(Person)
        .where(Person.id.in_(person_ids), Person.unreachable_reported_at.is_(None))
        .values(unreachable_reported_at=now)
        .returning(Person.telegram_id, Person.full_name)
        .execution_options(synchronize_session=False)
    )
    return sorted((int(tid), str(name)) for tid, name in rows)


async def private_chat_gone(session: AsyncSession, telegram_id: int) -> Leader | None:
    """Telegram refused to write to this person (they blocked the bot, or never opened it):
    they are no longer reachable. The leader it was, if a leader."""
    person = (
        await session.scalars(select(Person).where(Person.telegram_id == telegram_id))
    ).first()
    if person is None:
        return None
    person.started_private = False
    is_leader = await session.scalar(
        select(RoleGrant.id).where(
            RoleGrant.person_id == person.id, RoleGrant.role == Role.leader.value
        )
    )
    if is_leader is None:
        return None
    return Leader(person.id, person.telegram_id, person.full_name, person.locale, False)
