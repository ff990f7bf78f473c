"""Volunteer points (积分, DESIGN.md §6): the append-only ledger and the balance kept beside it.

Every change is one new ledger row plus one guarded update of the person's balance, both in the
caller's transaction, so sum(ledger) == balance always. The balance update is conditional
(``balance + amount >= 0``) and the table has ``CHECK (balance >= 0)``: a debit that would go
below zero changes nothing, on SQLite and PostgreSQL alike, however many run at once.

Earnings lock the person's balance row first (SQLite: the first write takes the database's
write lock; PostgreSQL: ``SELECT ... FOR UPDATE``), so the daily cap and the "never twice" check
(a unique key per person, reason and source) see every earlier earning of that person.

Who earns for a problem: its reporter, if they hold the volunteer role when it is assigned
(+problem_assigned) and when it is closed (+problem_closed). Inspectors and admins report as
part of their work and earn nothing. A problem rejected after it was assigned takes back what it
earned, as far as the balance goes: points already spent at a shop stay spent, and the entry
records how much could not be taken back (``nominal`` against ``amount``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.rules import Points
from bot.services.points_rules import (
    capped_amount,
    local_day,
    reversal_amount,
)
from bot.services.problem_machine import Action
from bot.services.roles import Role
from models import (
    ActivityClaim,
    Person,
    PointsAccount,
    PointsEntry,
    Problem,
    RoleGrant,
)


class Kind(StrEnum):
    problem_assigned = "problem_assigned"
    problem_closed = "problem_closed"
    problem_reversed = "problem_reversed"
    activity = "activity"
    redemption = "redemption"
    correction = "correction"


EARNINGS = (Kind.problem_assigned, Kind.problem_closed, Kind.activity)
# What counts as "earned this month" (and on the leaderboard): earnings less reversals.
MONTH_KINDS = (*EARNINGS, Kind.problem_reversed)


@dataclass(frozen=True)
class Policy:
    """The points section of the rules, and the zone whose days and months count."""

    rules: Points
    zone: tzinfo

    def cap_day(self, moment: datetime) -> date:
        return local_day(moment, self.zone)


@dataclass(frozen=True)
class Entry:
    id: int
    person_id: int
    kind: Kind
    amount: int
    nominal: int
    at: datetime
    note: str | None
    problem_code: str | None
    activity: str | None
    approver_name: str | None
    redemption_id: int | None


@dataclass(frozen=True)
class Change:
    entry: Entry
    balance: int  # after the entry
    created: bool  # False: the same event was already in the ledger


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


async def lock_account(session: AsyncSession, person_id: int, now: datetime) -> int:
    """Make sure the person has a balance row and lock it for this transaction; the balance."""
    insert = pg_insert if _dialect(session) == "postgresql" else sqlite_insert
    await session.execute(
        insert(PointsAccount)
        .values(person_id=person_id, balance=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["person_id"])
    )
    balance = await session.scalar(
        select(PointsAccount.balance).where(PointsAccount.person_id == person_id).with_for_update()
    )
    return int(balance or 0)


async def balance_of(session: AsyncSession, person_id: int) -> int:
    balance = await session.scalar(
        select(PointsAccount.balance).where(PointsAccount.person_id == person_id)
    )
    return int(balance or 0)


async def _move(session: AsyncSession, person_id: int, amount: int, now: datetime) -> int | None:
    """Add ``amount`` to the balance unless that would take it below zero (or there is no
    balance row); the new balance, or None when nothing changed."""
    row = (
        await session.execute(
            update(PointsAccount)
            .where(PointsAccount.person_id == person_id, PointsAccount.balance + amount >= 0)
            .values(balance=PointsAccount.balance + amount, updated_at=now)
            .returning(PointsAccount.balance)
            .execution_options(synchronize_session=False)
        )
    ).first()
    return None if row is None else int(row[0])


async def _append(
    session: AsyncSession,
    person_id: int,
    kind: Kind,
    amount: int,
    *,
    now: datetime,
    nominal: int | None = None,
    key: str | None = None,
    problem_id: int | None = None,
    claim_id: int | None = None,
    redemption_id: int | None = None,
    approver_id: int | None = None,
    note: str | None = None,
    cap_day: date | None = None,
) -> Change | None:
    """One ledger row and the balance moved with it, or None (and nothing written) when the
    balance does not cover a debit."""
    balance = await _move(session, person_id, amount, now)
    if balance is None:
        return None
    entry = PointsEntry(
        person_id=person_id,
        kind=kind.value,
        amount=amount,
        nominal=amount if nominal is None else nominal,
        problem_id=problem_id,
        claim_id=claim_id,
        redemption_id=redemption_id,
        approver_id=approver_id,
        note=note,
        cap_day=cap_day,
        at=now,
        key=key,
    )
    session.add(entry)
    await session.flush()
    view = await entry_by_id(session, entry.id)
    assert view is not None
    return Change(view, balance, created=True)


def _entries_query() -> Select[PointsEntry, str | None, str | None, str | None]:
    approver = aliased(Person)
    return (
        select(PointsEntry, Problem.code, ActivityClaim.activity, approver.full_name)
        .outerjoin(Problem, Problem.id == PointsEntry.problem_id)
        .outerjoin(ActivityClaim, ActivityClaim.id == PointsEntry.claim_id)
        .outerjoin(approver, approver.id == PointsEntry.approver_id)
    )


def _entry(row: PointsEntry, code: str | None, activity: str | None, name: str | None) -> Entry:
    return Entry(
        row.id,
        row.person_id,
        Kind(row.kind),
        row.amount,
        row.nominal,
        row.at,
        row.note,
        code,
        activity,
        name,
        row.redemption_id,
    )


async def entry_by_id(session: AsyncSession, entry_id: int) -> Entry | None:
    row = (await session.execute(_entries_query().where(PointsEntry.id == entry_id))).first()
    return None if row is None else _entry(*row)


async def entry_by_key(session: AsyncSession, key: str) -> Entry | None:
    row = (await session.execute(_entries_query().where(PointsEntry.key == key))).first()
    return None if row is None else _entry(*row)


async def entries_of(session: AsyncSession, person_id: int, *, limit: int = 10) -> list[Entry]:
    """The person's latest entries, newest first."""
    rows = await session.execute(
        _entries_query()
        .where(PointsEntry.person_id == person_id)
        .order_by(PointsEntry.at.desc(), PointsEntry.id.desc())
        .limit(limit)
    )
    return [_entry(*row) for row in rows]


async def earn(
    session: AsyncSession,
    policy: Policy,
    person_id: int,
    kind: Kind,
    nominal: int,
    *,
    key: str,
    cap_day: date,
    now: datetime,
    approver_id: int | None = None,
    problem_id: int | None = None,
    claim_id: int | None = None,
) -> Change:
    """Credit an earning once per ``key``, cut to what the day's cap still allows (a fully
    capped earning is still written, with amount 0, so that the volunteer sees why)."""
    if kind not in EARNINGS:
        raise ValueError(kind)
    balance = await lock_account(session, person_id, now)
    existing = await entry_by_key(session, key)
    if existing is not None:
        return Change(existing, balance, created=False)
    earned = await session.scalar(
        select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            PointsEntry.person_id == person_id,
            PointsEntry.cap_day == cap_day,
            PointsEntry.kind.in_([k.value for k in EARNINGS]),
        )
    )
    amount = capped_amount(nominal, int(earned or 0), policy.rules.daily_cap)
    change = await _append(
        session,
        person_id,
        kind,
        amount,
        now=now,
        nominal=max(0, nominal),
        key=key,
        problem_id=problem_id,
        claim_id=claim_id,
        approver_id=approver_id,
        cap_day=cap_day,
    )
    assert change is not None  # a credit always applies
    return change


async def debit(
    session: AsyncSession,
    person_id: int,
    amount: int,
    *,
    now: datetime,
    approver_id: int,
    redemption_id: int,
) -> Change | None:
    """A redemption: ``amount`` (> 0) leaves the balance at once, or nothing happens."""
    if amount <= 0:
        raise ValueError(amount)
    return await _append(
        session,
        person_id,
        Kind.redemption,
        -amount,
        now=now,
        key=f"redemption:{redemption_id}",
        redemption_id=redemption_id,
        approver_id=approver_id,
    )


class CorrectionRefusal(StrEnum):
    needs_reason = "needs_reason"
    zero = "zero"
    below_zero = "below_zero"


@dataclass(frozen=True)
class CorrectionRefused:
    refusal: CorrectionRefusal
    balance: int


async def correct(
    session: AsyncSession,
    person_id: int,
    amount: int,
    *,
    admin_id: int,
    reason: str,
    now: datetime,
) -> Change | CorrectionRefused:
    """An admin's correction: a new entry with the reason, never an edit. A correction that
    would take the balance below zero is refused."""
    reason = reason.strip()
    if not reason or amount == 0:
        refusal = CorrectionRefusal.zero if reason else CorrectionRefusal.needs_reason
        return CorrectionRefused(refusal, await balance_of(session, person_id))
    if amount > 0:
        await lock_account(session, person_id, now)
    change = await _append(
        session,
        person_id,
        Kind.correction,
        amount,
        now=now,
        approver_id=admin_id,
        note=reason[:500],
    )
    if change is None:
        return CorrectionRefused(CorrectionRefusal.below_zero, await balance_of(session, person_id))
    return change


async def is_volunteer(session: AsyncSession, person_id: int) -> bool:
    found = await session.scalar(
        select(RoleGrant.id).where(
            RoleGrant.person_id == person_id, RoleGrant.role == Role.volunteer.value
        )
    )
    return found is not None


async def reverse_problem(
    session: AsyncSession,
    *,
    problem_id: int,
    person_id: int,
    approver_id: int | None,
    now: datetime,
    reason: str | None,
) -> Change | None:
    """Take back what a problem earned its reporter (once); None if it earned nothing."""
    credited_query = select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
        PointsEntry.person_id == person_id,
        PointsEntry.problem_id == problem_id,
        PointsEntry.kind.in_([k.value for k in EARNINGS]),
    )
    if not await session.scalar(credited_query):
        return None
    key = f"problem:{problem_id}:reversed:{person_id}"
    balance = await lock_account(session, person_id, now)
    existing = await entry_by_key(session, key)
    if existing is not None:
        return Change(existing, balance, created=False)
    credited = int(await session.scalar(credited_query) or 0)
    return await _append(
        session,
        person_id,
        Kind.problem_reversed,
        reversal_amount(credited, balance),
        now=now,
        nominal=-credited,
        key=key,
        problem_id=problem_id,
        approver_id=approver_id,
        note=reason,
    )


async def on_problem_transition(
    session: AsyncSession,
    policy: Policy,
    *,
    problem_id: int,
    reporter_id: int,
    reported_at: datetime,
    action: Action,
    actor_id: int,
    now: datetime,
    reason: str | None = None,
) -> Change | None:
    """The points a transition brings its reporter, written with the transition. The cap
    counts them on the day the problem was reported (the volunteer's own act)."""
    if action is Action.reject:
        return await reverse_problem(
            session,
            problem_id=problem_id,
            person_id=reporter_id,
            approver_id=actor_id,
            now=now,
            reason=reason,
        )
    kinds = {Action.assign: Kind.problem_assigned, Action.pass_check: Kind.problem_closed}
    kind = kinds.get(action)
    if kind is None or not await is_volunteer(session, reporter_id):
        return None
    rules = policy.rules
    nominal = rules.problem_assigned if kind is Kind.problem_assigned else rules.problem_closed
    return await earn(
        session,
        policy,
        reporter_id,
        kind,
        nominal,
        key=f"problem:{problem_id}:{kind.value}:{reporter_id}",
        cap_day=policy.cap_day(reported_at),
        now=now,
        approver_id=actor_id,
        problem_id=problem_id,
    )


# Which ledger entry each transition may make for the problem's reporter.
KIND_OF_ACTION = {
    Action.assign: Kind.problem_assigned,
    Action.pass_check: Kind.problem_closed,
    Action.reject: Kind.problem_reversed,
}


async def points_of_transition(
    session: AsyncSession, problem_id: int, person_id: int, action: Action
) -> Change | None:
    """The entry a problem's transition made for its reporter, if any (for the notice)."""
    kind = KIND_OF_ACTION.get(action)
    if kind is None:
        return None
    key = (
        f"problem:{problem_id}:reversed:{person_id}"
        if kind is Kind.problem_reversed
        else f"problem:{problem_id}:{kind.value}:{person_id}"
    )
    entry = await entry_by_key(session, key)
    if entry is None:
        return None
    return Change(entry, await balance_of(session, person_id), created=True)
