"""Per-subject counts over one window, each from ONE aggregate query (SQLite and PostgreSQL
alike): never a query per subject or per problem.

``window_counts`` is what the ranking reads. Its cohort is the problems assigned in the window
(rejected ones excluded) as they stand at ``as_of``: assigned, closed, on time, due and the days
to rectify count those. Open overdue (and so the red override) counts every problem of the
subject open and past its deadline at ``as_of`` and assigned before the window's end, also
those assigned before it began: a town whose December problems are still overdue in January
must not drop out of the new year's ranking looking clean. ``window_flows`` is what a summary
adds: how many were reported, assigned and closed within the window. Overdue and on time are
derived here from the status, deadline and submission columns, never stored: overdue is open
(rectifying or pending check) and past the deadline at ``as_of``; on time is closed with the
accepted rectification submitted by the deadline then in force (``submitted_on_time``, set at
submission).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.problem_machine import OPEN_STATUSES, Status, days_overdue
from bot.services.ranking import SubjectCounts
from bot.services.roles import AreaKind
from bot.services.windows import Window
from models import Area, Problem

OPEN = [s.value for s in OPEN_STATUSES]


@dataclass(frozen=True)
class WindowCounts:
    window: Window
    as_of: datetime
    subjects: list[SubjectCounts]  # every subject, by area code, zeros included


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def _rectify_days(dialect: str, closed: ColumnElement[bool]) -> ColumnElement[Any]:
    """The days from assignment to the accepted submission, summed over the closed problems,
    as each database spells it (PostgreSQL sums intervals and converts once per subject)."""
    if dialect == "postgresql":
        interval = func.sum(Problem.submitted_at - Problem.assigned_at).filter(closed)
        return extract("epoch", interval) / 86400.0
    days = func.julianday(Problem.submitted_at) - func.julianday(Problem.assigned_at)
    return func.sum(days).filter(closed)


def counts_query(dialect: str, window: Window, as_of: datetime) -> Select[*tuple[Any, ...]]:
    """The ranking's one aggregate statement: the window's cohort and, beside it, what was
    assigned earlier and is overdue now. The index ``ix_problems_ranking`` (subject first, then
    the assignment time, then every column read here) lets SQLite answer it from the index
    alone, already grouped, without sorting."""
    is_closed = Problem.status == Status.closed.value
    is_overdue = and_(Problem.status.in_(OPEN), Problem.deadline < as_of)
    cohort = Problem.assigned_at >= window.start  # with the WHERE: assigned in the window
    closed = and_(cohort, is_closed)
    return (
        select(
            Problem.subject_id,
            func.count().filter(cohort).label("assigned"),
            func.count().filter(closed).label("closed"),
            func.count().filter(closed, Problem.submitted_on_time.is_(True)).label("on_time"),
            func.count().filter(cohort, or_(is_closed, is_overdue)).label("due"),
            func.count().filter(is_overdue).label("overdue"),
            func.min(Problem.deadline).filter(is_overdue).label("oldest"),
            _rectify_days(dialect, closed).label("rectify_days"),
        )
        .where(
            Problem.subject_id.is_not(None),
            Problem.assigned_at < window.end,
            Problem.status != Status.rejected.value,
            or_(cohort, is_overdue),
        )
        .group_by(Problem.subject_id)
    )


async def window_counts(
    session: AsyncSession, window: Window, as_of: datetime, zone: tzinfo
) -> WindowCounts:
    """Every subject's counts over ``window``, the problems as they stand at ``as_of`` (now).

    The statuses are today's: ``as_of`` only says when a deadline counts as passed. ``overdue``
    includes the problems assigned before the window that are overdue at ``as_of``."""
    rows = {
        row.subject_id: row
        for row in await session.execute(counts_query(_dialect(session), window, as_of))
    }
    subjects = await session.execute(
        select(Area.id, Area.name, Area.code)
        .where(Area.kind == AreaKind.subject.value)
        .order_by(Area.code)
    )
    result: list[SubjectCounts] = []
    for subject_id, name, code in subjects:
        row = rows.get(subject_id)
        if row is None:
            result.append(SubjectCounts(subject_id, name, code))
            continue
        oldest: datetime | None = row.oldest
        result.append(
            SubjectCounts(
                subject_id,
                name,
                code,
                assigned=int(row.assigned),
                closed=int(row.closed),
                closed_on_time=int(row.on_time),
                due=int(row.due),
                overdue=int(row.overdue),
                longest_overdue_days=(
                    float(days_overdue(oldest, as_of, zone)) if oldest is not None else 0.0
                ),
                rectify_days_total=float(row.rectify_days or 0.0),
            )
        )
    return WindowCounts(window, as_of, result)


@dataclass(frozen=True)
class SubjectFlows:
    """What happened within a window. ``subject_id`` None: reports no subject has taken yet."""

    subject_id: int | None
    reported: int = 0
    assigned: int = 0
    closed: int = 0
    # Went overdue in the window: the deadline passed in it with the problem not rectified in
    # time (still open, or closed with a late submission).
    overdue: int = 0


async def window_flows(
    session: AsyncSession, window: Window, as_of: datetime
) -> dict[int | None, SubjectFlows]:
    """Reported, assigned, closed and gone overdue within ``window`` up to ``as_of``, per
    subject, in one aggregate query (for summaries: this week against last). Subjects with
    nothing are absent."""
    start, end = window.start, min(window.end, as_of)
    reported = and_(Problem.created_at >= start, Problem.created_at < end)
    assigned = and_(Problem.assigned_at >= start, Problem.assigned_at < end)
    closed = and_(
        Problem.status == Status.closed.value, Problem.closed_at >= start, Problem.closed_at < end
    )
    went_overdue = and_(
        Problem.deadline >= start,
        Problem.deadline < end,
        or_(
            Problem.status.in_(OPEN),
            and_(Problem.status == Status.closed.value, Problem.submitted_on_time.is_not(True)),
        ),
    )
    rows = await session.execute(
        select(
            Problem.subject_id,
            func.count().filter(reported),
            func.count().filter(assigned),
            func.count().filter(closed),
            func.count().filter(went_overdue),
        )
        .where(or_(reported, assigned, closed, went_overdue))
        .group_by(Problem.subject_id)
    )
    return {
        subject_id: SubjectFlows(subject_id, int(r), int(a), int(c), int(o))
        for subject_id, r, a, c, o in rows
    }
