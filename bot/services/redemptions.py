"""Redemption at designated shops (积分超市, 核销): one-time codes and the shop's checkout.

A code is six random digits (``secrets``), valid for ``code_valid_minutes``. ``live_code`` is
unique, so no two usable codes share digits; a code stops being live when used (or when found
expired by the next issue). A checkout is two guarded updates in one transaction:

1. the code: ``UPDATE ... SET used_at = now ... WHERE live_code = :code AND used_at IS NULL
   AND expires_at > now`` — of two shops racing on one code exactly one updates a row;
2. the balance: ``balance - amount`` only ``WHERE balance >= amount`` — of two redemptions
   racing on one balance, the second sees the first's result and is refused if it no longer
   fits; the first step is then undone in the same transaction.

Both run as the transaction's first writes, so SQLite's single writer serialises them and
PostgreSQL's row locks re-check each WHERE on the newest row.

Six digits can be guessed: a shop account is refused after ``checkout_failures_per_hour``
wrong codes in an hour or ``checkout_failures_per_day`` in a local day (a wrong code is one
unknown, expired or already used). The shop's row is locked and each attempt written before
the count, so parallel guesses are counted too. With 20 guesses a day and, say, 20 live codes in
the district, a dishonest shop hits one with odds of about 1 in 2,500 per day, and the
volunteer is told of every redemption at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.services import points
from bot.services.points import Policy
from bot.services.points_rules import locked_until, new_code
from models import Area, CheckoutAttempt, Person, RedemptionCode

ISSUE_ATTEMPTS = 30


class IssueRefusal(StrEnum):
    no_points = "no_points"
    too_many_codes = "too_many_codes"


@dataclass(frozen=True)
class IssuedCode:
    id: int
    code: str
    expires_at: datetime
    balance: int


@dataclass(frozen=True)
class IssueRefused:
    refusal: IssueRefusal
    # too_many_codes: when the first of the live codes expires
    until: datetime | None = None


async def _expire_live_codes(session: AsyncSession, now: datetime) -> None:
    """Free the digits of codes that ran out, so that they may be drawn again."""
    await session.execute(
        update(RedemptionCode)
        .where(RedemptionCode.live_code.is_not(None), RedemptionCode.expires_at <= now)
        .values(live_code=None)
        .execution_options(synchronize_session=False)
    )


async def issue_code(
    session: AsyncSession,
    policy: Policy,
    person_id: int,
    *,
    now: datetime,
    randbelow: Callable[[int], int] = secrets.randbelow,
) -> IssuedCode | IssueRefused:
    """A new one-time code for the person, if they have points and not too many live codes."""
    if await points.balance_of(session, person_id) <= 0:  # refused without writing anything
        return IssueRefused(IssueRefusal.no_points)
    balance = await points.lock_account(session, person_id, now)
    await _expire_live_codes(session, now)
    live = (
        await session.scalars(
            select(RedemptionCode.expires_at)
            .where(RedemptionCode.person_id == person_id, RedemptionCode.live_code.is_not(None))
            .order_by(RedemptionCode.expires_at)
        )
    ).all()
    if len(live) >= policy.rules.max_live_codes:
        return IssueRefused(IssueRefusal.too_many_codes, live[0])
    expires_at = now + timedelta(minutes=policy.rules.code_valid_minutes)
    for _attempt in range(ISSUE_ATTEMPTS):
        code = new_code(randbelow)
        taken = await session.scalar(
            select(RedemptionCode.id).where(RedemptionCode.live_code == code)
        )
        if taken is not None:
            continue
        row = RedemptionCode(
            person_id=person_id, code=code, live_code=code, issued_at=now, expires_at=expires_at
        )
        try:
            # Another process may draw the same digits at the same moment: the unique index
            # decides, and the loser draws again.
            async with session.begin_nested():
                session.add(row)
                await session.flush()
        except IntegrityError:
            continue
        return IssuedCode(row.id, code, expires_at, balance)
    raise RuntimeError("could not draw a free redemption code")


class CheckoutRefusal(StrEnum):
    locked = "locked"
    unknown = "unknown"
    expired = "expired"
    used = "used"
    own_code = "own_code"
    too_large = "too_large"


# Refusals that mean a wrong code, counted towards the lock-out.
WRONG_CODE = (CheckoutRefusal.unknown, CheckoutRefusal.expired, CheckoutRefusal.used)
OK = "ok"


@dataclass(frozen=True)
class CheckoutRefused:
    refusal: CheckoutRefusal
    balance: int | None = None  # too_large: what the volunteer has
    until: datetime | None = None  # locked: when the shop may try again
    used_at: datetime | None = None  # used: when


@dataclass(frozen=True)
class Receipt:
    redemption_id: int
    entry_id: int
    amount: int
    balance: int  # the volunteer's, after
    at: datetime
    volunteer_id: int
    volunteer_telegram_id: int
    volunteer_name: str
    volunteer_locale: str | None
    shop_id: int
    shop_telegram_id: int
    shop_name: str
    shop_area_name: str | None


async def _record(session: AsyncSession, attempt: CheckoutAttempt, outcome: str) -> None:
    attempt.outcome = outcome
    await session.flush()


async def checkout(
    session: AsyncSession,
    policy: Policy,
    shop_person_id: int,
    shop_area_id: int | None,
    code: str,
    amount: int,
    *,
    now: datetime,
    update_id: int | None = None,
) -> Receipt | CheckoutRefused:
    """The shop redeems ``amount`` points with the volunteer's ``code``. Refused: nothing
    changes but the record of the attempt.

    ``update_id``: the Telegram update asking. Run again (its first run failed telling the
    shop or the volunteer), it gets the receipt of the checkout it made, rather than "used"
    (which would also count as a wrong code towards the shop's lock-out)."""
    if amount <= 0:
        raise ValueError(amount)
    if update_id is not None:
        made = await _made_by_update(session, shop_person_id, code, update_id)
        if made is not None:
            return made
    # One checkout per shop at a time, so that parallel guesses all count: PostgreSQL locks
    # the shop's row (NO KEY UPDATE: rows that merely refer to it are not held up), SQLite
    # has one writer from the attempt's insert on.
    await session.execute(
        select(Person.id).where(Person.id == shop_person_id).with_for_update(key_share=True)
    )
    attempt = CheckoutAttempt(
        shop_id=shop_person_id, code=code[:16], amount=amount, outcome="pending", at=now
    )
    session.add(attempt)
    await session.flush()
    failures = await session.scalars(
        select(CheckoutAttempt.at).where(
            CheckoutAttempt.shop_id == shop_person_id,
            CheckoutAttempt.outcome.in_([r.value for r in WRONG_CODE]),
            CheckoutAttempt.at > now - timedelta(days=1),
        )
    )
    until = locked_until(
        failures.all(),
        now,
        policy.zone,
        per_hour=policy.rules.checkout_failures_per_hour,
        per_day=policy.rules.checkout_failures_per_day,
    )
    if until is not None:
        await _record(session, attempt, CheckoutRefusal.locked)
        return CheckoutRefused(CheckoutRefusal.locked, until=until)

    taken = (
        await session.execute(
            update(RedemptionCode)
            .where(
                RedemptionCode.live_code == code,
                RedemptionCode.used_at.is_(None),
                RedemptionCode.expires_at > now,
            )
            .values(
                used_at=now,
                shop_id=shop_person_id,
                shop_area_id=shop_area_id,
                amount=amount,
                live_code=None,
                used_update_id=update_id,
            )
            .returning(RedemptionCode.id, RedemptionCode.person_id)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if taken is None:
        refused = await _why_not(session, code, now)
        await _record(session, attempt, refused.refusal)
        return refused
    redemption_id, volunteer_id = int(taken[0]), int(taken[1])

    async def undo(refused: CheckoutRefused) -> CheckoutRefused:
        await session.execute(
            update(RedemptionCode)
            .where(RedemptionCode.id == redemption_id)
            .values(
                used_at=None,
                shop_id=None,
                shop_area_id=None,
                amount=None,
                live_code=code,
                used_update_id=None,
            )
            .execution_options(synchronize_session=False)
        )
        await _record(session, attempt, refused.refusal)
        return refused

    if volunteer_id == shop_person_id:
        return await undo(CheckoutRefused(CheckoutRefusal.own_code))
    change = await points.debit(
        session,
        volunteer_id,
        amount,
        now=now,
        approver_id=shop_person_id,
        redemption_id=redemption_id,
    )
    if change is None:
        balance = await points.balance_of(session, volunteer_id)
        return await undo(CheckoutRefused(CheckoutRefusal.too_large, balance=balance))
    await _record(session, attempt, OK)
    return await _receipt(
        session,
        redemption_id,
        change.entry.id,
        amount,
        change.balance,
        now,
        volunteer_id,
        shop_person_id,
        shop_area_id,
    )


async def _receipt(
    session: AsyncSession,
    redemption_id: int,
    entry_id: int,
    amount: int,
    balance: int,
    at: datetime,
    volunteer_id: int,
    shop_person_id: int,
    shop_area_id: int | None,
) -> Receipt:
    volunteer = await session.get(Person, volunteer_id)
    shop = await session.get(Person, shop_person_id)
    assert volunteer is not None and shop is not None
    area = await session.scalar(select(Area.name).where(Area.id == shop_area_id))
    return Receipt(
        redemption_id,
        entry_id,
        amount,
        balance,
        at,
        volunteer.id,
        volunteer.telegram_id,
        volunteer.full_name,
        volunteer.locale,
        shop.id,
        shop.telegram_id,
        shop.full_name,
        area,
    )


async def _made_by_update(
    session: AsyncSession, shop_person_id: int, code: str, update_id: int
) -> Receipt | None:
    """The receipt of the checkout this update made already, if it did."""
    used = (
        await session.scalars(
            select(RedemptionCode).where(
                RedemptionCode.code == code,  # indexed; few codes share digits
                RedemptionCode.shop_id == shop_person_id,
                RedemptionCode.used_update_id == update_id,
            )
        )
    ).first()
    if used is None or used.amount is None or used.used_at is None:
        return None
    entry = await points.entry_by_key(session, f"redemption:{used.id}")
    assert entry is not None
    balance = await points.balance_of(session, used.person_id)
    return await _receipt(
        session,
        used.id,
        entry.id,
        used.amount,
        balance,
        used.used_at,
        used.person_id,
        shop_person_id,
        used.shop_area_id,
    )


async def _why_not(session: AsyncSession, code: str, now: datetime) -> CheckoutRefused:
    """Why a code could not be taken: the newest code with these digits tells."""
    row = (
        await session.execute(
            select(RedemptionCode.used_at, RedemptionCode.expires_at)
            .where(RedemptionCode.code == code)
            .order_by(RedemptionCode.id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return CheckoutRefused(CheckoutRefusal.unknown)
    used_at, expires_at = row
    if used_at is not None:
        return CheckoutRefused(CheckoutRefusal.used, used_at=used_at)
    if expires_at <= now:
        return CheckoutRefused(CheckoutRefusal.expired)
    return CheckoutRefused(CheckoutRefusal.unknown)  # taken by a racing checkout just now


@dataclass(frozen=True)
class ShopLine:
    redemption_id: int
    at: datetime
    volunteer_name: str
    amount: int


@dataclass(frozen=True)
class ShopReport:
    lines: list[ShopLine]
    count: int
    total: int


async def shop_report(
    session: AsyncSession, shop_person_id: int, start: datetime, end: datetime, *, limit: int = 50
) -> ShopReport:
    """The shop's redemptions in [start, end), newest first (at most ``limit`` lines), with
    the count and total of all of them, for reconciliation."""
    window = (
        RedemptionCode.shop_id == shop_person_id,
        RedemptionCode.used_at.is_not(None),
        RedemptionCode.used_at >= start,
        RedemptionCode.used_at < end,
    )
    count, total = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(RedemptionCode.amount), 0)).where(*window)
        )
    ).one()
    volunteer = aliased(Person)
    rows = await session.execute(
        select(
            RedemptionCode.id, RedemptionCode.used_at, volunteer.full_name, RedemptionCode.amount
        )
        .join(volunteer, volunteer.id == RedemptionCode.person_id)
        .where(*window)
        .order_by(RedemptionCode.used_at.desc(), RedemptionCode.id.desc())
        .limit(limit)
    )
    lines = [
        ShopLine(rid, used_at, name, amount or 0)
        for rid, used_at, name, amount in rows
        if used_at is not None
    ]
    return ShopReport(lines, int(count or 0), int(total or 0))
