"""Redemptions and approvals racing each other, each in its own session on its own connection,
all released at the same moment, on SQLite and PostgreSQL: exactly one wins where one may, the
ledger sums to the balance, and no balance goes below zero."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bot.db import Database, _sqlite_pragmas
from bot.services import claims, points, redemptions
from bot.services.claims import ClaimView, Decided
from bot.services.points import CorrectionRefused
from bot.services.problems import PhotoIn
from bot.services.redemptions import CheckoutRefusal, CheckoutRefused, IssuedCode, Receipt
from bot.services.roles import Role
from models import PointsEntry, RedemptionCode
from tests.integration.points_world import (
    T0,
    assert_books_balance,
    books,
    cast_of,
    person,
    policy,
)

RACERS = 50
# For the races that need fewer to make their point (SQLite's busy waits make each racer cost).
FEW = 20
T = TypeVar("T")
# The lock-out is not what is tested here: racing shops get many "already used" answers.
POLICY = policy(
    max_live_codes=RACERS, checkout_failures_per_hour=1000, checkout_failures_per_day=1000
)


@pytest.fixture
async def wide_db(db_url: str) -> AsyncIterator[Database]:
    """A connection for every racer, so that all of them are inside a transaction at once."""
    engine = create_async_engine(db_url, pool_size=RACERS, max_overflow=0)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    yield Database(engine, async_sessionmaker(engine, expire_on_commit=False))
    await engine.dispose()


async def race(db: Database, jobs: list[Callable[..., Awaitable[T]]]) -> list[T]:
    """Run each job in its own transaction on its own connection, all released together."""
    barrier = asyncio.Barrier(len(jobs))

    async def one(job: Callable[..., Awaitable[T]]) -> T:
        async with db.begin() as session:
            await session.connection()  # hold a connection before the start
            await barrier.wait()
            return await job(session)

    return await asyncio.gather(*(one(job) for job in jobs))


async def _fund(db: Database, who: int, admin: int, amount: int) -> None:
    async with db.begin() as s:
        change = await points.correct(s, who, amount, admin_id=admin, reason="测试", now=T0)
    assert not isinstance(change, CorrectionRefused)


async def test_fifty_redemptions_on_one_balance(wide_db: Database) -> None:
    db = wide_db
    volunteer = await person(db, "赵志愿", (Role.volunteer, "NH-DQ-01"))
    admin = await person(db, "王主任", (Role.admin, "NH"))
    shops = await cast_of(db, [(f"超市{i}", ((Role.shop, "NH-DQ-01"),)) for i in range(2)])
    await _fund(db, volunteer.id, admin.id, 60)
    codes = []
    for _ in range(RACERS // 2):
        async with db.begin() as s:
            issued = await redemptions.issue_code(s, POLICY, volunteer.id, now=T0)
        assert isinstance(issued, IssuedCode)
        codes.append(issued.code)
    rng = random.Random(6)
    # Every code entered by both shops at once, with amounts adding up to more than 60.
    attempts = [(shop.id, code, rng.randint(1, 5)) for code in codes for shop in shops]
    assert sum(a for _s, c, a in attempts[::2]) > 60

    def job(shop_id: int, code: str, amount: int) -> Callable[..., Awaitable[object]]:
        return lambda s: redemptions.checkout(s, POLICY, shop_id, None, code, amount, now=T0)

    results = await race(db, [job(*a) for a in attempts])

    wins = [r for r in results if isinstance(r, Receipt)]
    refusals = [r.refusal for r in results if isinstance(r, CheckoutRefused)]
    assert len(wins) + len(refusals) == RACERS
    assert set(refusals) <= {CheckoutRefusal.used, CheckoutRefusal.too_large}
    spent = sum(r.amount for r in wins)
    ledger = await books(db)
    assert ledger[volunteer.id] == (60 - spent, 60 - spent)
    assert 60 - spent >= 0
    # A code is used once at most, and each use is one ledger entry of its amount.
    async with db.begin() as s:
        used = (
            await s.execute(
                select(RedemptionCode.id, RedemptionCode.amount).where(
                    RedemptionCode.used_at.is_not(None)
                )
            )
        ).all()
        entries = (
            await s.execute(
                select(PointsEntry.redemption_id, PointsEntry.amount).where(
                    PointsEntry.kind == "redemption"
                )
            )
        ).all()
    assert len({r.redemption_id for r in wins}) == len(wins) == len(used)
    assert sorted((rid, -amount) for rid, amount in entries) == sorted(used)
    # Whatever was refused for the balance could not have fitted in what was left.
    left = 60 - spent
    assert all(
        left < a
        for (_s, _c, a), r in zip(attempts, results, strict=True)
        if isinstance(r, CheckoutRefused) and r.refusal is CheckoutRefusal.too_large
    )
    await assert_books_balance(db)


async def test_twenty_shops_enter_one_code_at_once(wide_db: Database) -> None:
    db = wide_db
    volunteer = await person(db, "赵志愿", (Role.volunteer, "NH-DQ-01"))
    admin = await person(db, "王主任", (Role.admin, "NH"))
    shops = await cast_of(db, [(f"超市{i}", ((Role.shop, "NH-DQ-01"),)) for i in range(FEW)])
    await _fund(db, volunteer.id, admin.id, 10)
    async with db.begin() as s:
        issued = await redemptions.issue_code(s, POLICY, volunteer.id, now=T0)
    assert isinstance(issued, IssuedCode)

    def job(shop_id: int) -> Callable[..., Awaitable[object]]:
        return lambda s: redemptions.checkout(s, POLICY, shop_id, None, issued.code, 3, now=T0)

    results = await race(db, [job(shop.id) for shop in shops])
    wins = [r for r in results if isinstance(r, Receipt)]
    assert len(wins) == 1 and wins[0].balance == 7
    assert all(
        isinstance(r, CheckoutRefused) and r.refusal is CheckoutRefusal.used
        for r in results
        if r is not wins[0]
    )
    assert (await books(db))[volunteer.id] == (7, 7)


async def test_one_volunteer_redeeming_twice_at_once(wide_db: Database) -> None:
    db = wide_db
    volunteer = await person(db, "赵志愿", (Role.volunteer, "NH-DQ-01"))
    admin = await person(db, "王主任", (Role.admin, "NH"))
    shops = await cast_of(db, [(f"超市{i}", ((Role.shop, "NH-DQ-01"),)) for i in range(2)])
    await _fund(db, volunteer.id, admin.id, 5)
    issued = []
    for _ in shops:
        async with db.begin() as s:
            code = await redemptions.issue_code(s, POLICY, volunteer.id, now=T0)
        assert isinstance(code, IssuedCode)
        issued.append(code.code)

    def job(shop_id: int, code: str) -> Callable[..., Awaitable[object]]:
        return lambda s: redemptions.checkout(s, POLICY, shop_id, None, code, 4, now=T0)

    results = await race(db, [job(shop.id, code) for shop, code in zip(shops, issued, strict=True)])
    assert sum(isinstance(r, Receipt) for r in results) == 1
    (refused,) = [r for r in results if isinstance(r, CheckoutRefused)]
    assert refused.refusal is CheckoutRefusal.too_large and refused.balance == 1
    assert (await books(db))[volunteer.id] == (1, 1)
    async with db.begin() as s:  # the refused code is still good for what is left
        live = await s.scalar(
            select(RedemptionCode.live_code).where(RedemptionCode.used_at.is_(None))
        )
    assert live in issued


async def test_racing_approvals_keep_the_cap_and_decide_once(wide_db: Database) -> None:
    db = wide_db
    volunteer = await person(db, "赵志愿", (Role.volunteer, "NH-DQ-01"))
    cadres = await cast_of(db, [(f"干部{i}", ((Role.cadre, "NH-DQ-01"),)) for i in range(2)])
    capped = policy(daily_cap=20)
    ids = []
    for _ in range(FEW // 2):  # 10 clean-ups of 5 points on one day: 50 asked, 20 allowed
        async with db.begin() as s:
            claim = await claims.submit_claim(
                s, capped, volunteer.id, "cleanup", PhotoIn("p", "u"), "清理", now=T0
            )
        assert isinstance(claim, ClaimView)
        ids.append(claim.id)

    def job(claim_id: int, cadre_id: int) -> Callable[..., Awaitable[object]]:
        return lambda s: claims.approve_claim(s, capped, claim_id, cadre_id, now=T0)

    # Both cadres tap "approve" on every claim at the same moment.
    results = await race(db, [job(cid, cadre.id) for cid in ids for cadre in cadres])
    approved = [r for r in results if isinstance(r, tuple)]
    assert len(approved) == len(ids)
    assert all(isinstance(r, Decided) for r in results if not isinstance(r, tuple))
    assert sorted(view.id for view, _change in approved) == ids
    assert (await books(db))[volunteer.id] == (20, 20)
    async with db.begin() as s:
        amounts = list(
            await s.scalars(select(PointsEntry.amount).where(PointsEntry.kind == "activity"))
        )
    assert len(amounts) == len(ids) and sum(amounts) == 20


async def test_parallel_guesses_by_one_shop_all_count(wide_db: Database) -> None:
    db = wide_db
    shop = await person(db, "孙超市", (Role.shop, "NH-DQ-01"))
    strict = policy(checkout_failures_per_hour=5)
    guesses = [f"{n:06d}" for n in range(FEW)]  # no code was ever issued: all wrong

    def job(code: str) -> Callable[..., Awaitable[object]]:
        return lambda s: redemptions.checkout(s, strict, shop.id, None, code, 1, now=T0)

    results = await race(db, [job(code) for code in guesses])
    refusals = [r.refusal for r in results if isinstance(r, CheckoutRefused)]
    assert refusals.count(CheckoutRefusal.unknown) == 5
    assert refusals.count(CheckoutRefusal.locked) == FEW - 5
