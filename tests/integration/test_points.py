"""The points services on a real database (SQLite and PostgreSQL): problem points tied to
transitions, the daily cap, claims, codes and checkouts with their refusals, corrections, the
database's own guard on the balance, and the figures for the leaders' summary."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from bot.db import Database
from bot.services import claims, points, points_reports, problems, redemptions
from bot.services.claims import ClaimRefusal, ClaimView, Decided
from bot.services.points import CorrectionRefused, Kind, Policy
from bot.services.points_rules import month_window
from bot.services.problem_machine import Action, Refusal
from bot.services.problems import PhotoIn, ProblemView, ReportIn
from bot.services.redemptions import CheckoutRefusal, CheckoutRefused, IssuedCode, Receipt
from bot.services.roles import Role
from models import CheckoutAttempt, PointsAccount, PointsEntry, RedemptionCode
from tests.integration.points_world import (
    T0,
    ZONE,
    Person,
    assert_books_balance,
    books,
    cast_of,
    import_areas,
    person,
    policy,
)

VILLAGE, OTHER_VILLAGE, SUBJECT = "NH-DQ-01", "NH-XS-01", "NH-DQ"
_sources = itertools.count(1)


CAST = {
    "volunteer": ("赵志愿", ((Role.volunteer, VILLAGE),)),
    "other_volunteer": ("钱志愿", ((Role.volunteer, VILLAGE),)),
    "inspector": ("张网格", ((Role.inspector, SUBJECT),)),
    "cadre": ("陈干部", ((Role.cadre, VILLAGE),)),
    "other_cadre": ("周干部", ((Role.cadre, OTHER_VILLAGE),)),
    "admin": ("王主任", ((Role.admin, "NH"),)),
    "liaison": ("李联络", ((Role.liaison, SUBJECT),)),
    "shop": ("孙超市", ((Role.shop, VILLAGE),)),
    "other_shop": ("吴超市", ((Role.shop, OTHER_VILLAGE),)),
}


@pytest.fixture
async def cast(db: Database) -> dict[str, Person]:
    made = await cast_of(db, list(CAST.values()))
    return dict(zip(CAST, made, strict=True))


async def _report(db: Database, reporter: Person, when: datetime = T0) -> str:
    n = next(_sources)
    async with db.begin() as s:
        result = await problems.report_problem(
            s,
            ReportIn(reporter.id, "noise", "施工噪声", [PhotoIn(f"f{n}", f"u{n}")], -1, f"k{n}"),
            now=when,
            code_prefix="NH",
            zone_year=2026,
        )
    return result.problem.code


async def _move(
    db: Database,
    code: str,
    action: Action,
    actor: Person,
    when: datetime,
    p: Policy | None = None,
    **values: Any,
) -> ProblemView | Refusal | None:
    async with db.begin() as s:
        return await problems.transition(
            s, code, action, actor.id, now=when, points=p or policy(), **values
        )


async def _assign(
    db: Database,
    code: str,
    cast: dict[str, Person],
    when: datetime = T0,
    p: Policy | None = None,
) -> None:
    areas = await import_areas(db)
    moved = await _move(
        db,
        code,
        Action.assign,
        cast["admin"],
        when,
        p,
        subject_id=areas[SUBJECT],
        deadline=when + timedelta(days=7),
    )
    assert isinstance(moved, ProblemView)


async def _close(db: Database, code: str, cast: dict[str, Person], when: datetime = T0) -> None:
    submitted = await _move(
        db, code, Action.submit, cast["liaison"], when, after_photos=[PhotoIn("a", "ua")]
    )
    assert isinstance(submitted, ProblemView)
    assert isinstance(
        await _move(db, code, Action.pass_check, cast["inspector"], when), ProblemView
    )


async def _entries(db: Database, who: Person) -> list[tuple[str, int, int]]:
    async with db.begin() as s:
        rows = await s.execute(
            select(PointsEntry.kind, PointsEntry.amount, PointsEntry.nominal)
            .where(PointsEntry.person_id == who.id)
            .order_by(PointsEntry.id)
        )
        return [(k, a, n) for k, a, n in rows]


async def _balance(db: Database, who: Person) -> int:
    async with db.begin() as s:
        return await points.balance_of(s, who.id)


async def _correct(
    db: Database, who: Person, amount: int, admin: Person, when: datetime = T0
) -> None:
    async with db.begin() as s:
        result = await points.correct(s, who.id, amount, admin_id=admin.id, reason="开户", now=when)
    assert not isinstance(result, CorrectionRefused)


async def test_a_volunteers_problem_earns_on_assign_and_close_and_only_once(
    db: Database, cast: dict[str, Person]
) -> None:
    v = cast["volunteer"]
    code = await _report(db, v)
    assert await _entries(db, v) == []  # reporting alone earns nothing
    await _assign(db, code, cast)
    assert await _entries(db, v) == [("problem_assigned", 2, 2)]
    async with db.begin() as s:  # the same event again (a retried job, a bug): no new entry
        problem = await problems.problem_by_code(s, code)
        assert problem is not None
        again = await points.on_problem_transition(
            s,
            policy(),
            problem_id=problem.id,
            reporter_id=v.id,
            reported_at=problem.created_at,
            action=Action.assign,
            actor_id=cast["admin"].id,
            now=T0,
        )
    assert again is not None and not again.created
    await _close(db, code, cast)
    assert await _entries(db, v) == [("problem_assigned", 2, 2), ("problem_closed", 3, 3)]
    assert await _balance(db, v) == 5
    # A refused transition writes no points.
    assert await _move(db, code, Action.assign, cast["admin"], T0) == Refusal.wrong_status
    assert len(await _entries(db, v)) == 2
    await assert_books_balance(db)


async def test_an_inspectors_report_earns_nothing(db: Database, cast: dict[str, Person]) -> None:
    code = await _report(db, cast["inspector"])
    await _assign(db, code, cast)
    await _close(db, code, cast)
    assert await _entries(db, cast["inspector"]) == []


async def test_rejected_after_assignment_takes_the_points_back(
    db: Database, cast: dict[str, Person]
) -> None:
    v = cast["volunteer"]
    code = await _report(db, v)
    await _assign(db, code, cast)
    assert isinstance(
        await _move(db, code, Action.reject, cast["admin"], T0, reason="重复"), ProblemView
    )
    assert await _entries(db, v) == [("problem_assigned", 2, 2), ("problem_reversed", -2, -2)]
    assert await _balance(db, v) == 0
    # Rejected straight away: nothing earned, nothing to take back.
    code2 = await _report(db, v)
    await _move(db, code2, Action.reject, cast["admin"], T0, reason="不属实")
    assert len(await _entries(db, v)) == 2
    async with db.begin() as s:
        problem = await problems.problem_by_code(s, code)
        assert problem is not None
        entry = await points.entry_by_key(s, f"problem:{problem.id}:reversed:{v.id}")
    assert entry is not None and entry.note == "重复" and entry.problem_code == code


async def test_a_reversal_after_the_points_were_spent_stops_at_zero(
    db: Database, cast: dict[str, Person]
) -> None:
    v, shop = cast["volunteer"], cast["shop"]
    code = await _report(db, v)
    await _assign(db, code, cast)
    async with db.begin() as s:
        issued = await redemptions.issue_code(s, policy(), v.id, now=T0)
    assert isinstance(issued, IssuedCode)
    async with db.begin() as s:
        receipt = await redemptions.checkout(s, policy(), shop.id, None, issued.code, 1, now=T0)
    assert isinstance(receipt, Receipt) and receipt.balance == 1
    await _move(db, code, Action.reject, cast["admin"], T0, reason="误报")
    # One point left of the two: one comes back out, the other was spent at the shop.
    assert (await _entries(db, v))[-1] == ("problem_reversed", -1, -2)
    assert await _balance(db, v) == 0
    await assert_books_balance(db)


async def test_the_daily_cap_counts_on_the_day_of_the_volunteers_act(
    db: Database, cast: dict[str, Person]
) -> None:
    v, cadre = cast["volunteer"], cast["cadre"]
    p = policy(daily_cap=8)
    ids = []
    for activity in ("cleanup", "persuasion", "publicity", "patrol"):  # 5 + 3 + 2 + 1 on day 1
        async with db.begin() as s:
            claim = await claims.submit_claim(
                s, p, v.id, activity, PhotoIn("p", "up"), "做了", now=T0
            )
        assert isinstance(claim, ClaimView)
        ids.append(claim.id)
    async with db.begin() as s:  # a claim of the next day has its own allowance
        next_day = await claims.submit_claim(
            s, p, v.id, "cleanup", PhotoIn("p", "up"), "第二天", now=T0 + timedelta(days=1)
        )
    assert isinstance(next_day, ClaimView)
    later = T0 + timedelta(days=3)  # approved days later, all at once
    for claim_id in [*ids, next_day.id]:
        async with db.begin() as s:
            approved = await claims.approve_claim(s, p, claim_id, cadre.id, now=later)
        assert isinstance(approved, tuple)
    assert await _entries(db, v) == [
        ("activity", 5, 5),
        ("activity", 3, 3),  # 8: the cap
        ("activity", 0, 2),  # capped: written with 0, so the volunteer sees why
        ("activity", 0, 1),
        ("activity", 5, 5),
    ]
    # Problem points count on the day the problem was reported.
    code = await _report(db, v, T0)
    await _assign(db, code, cast, later, p)
    assert (await _entries(db, v))[-1] == ("problem_assigned", 0, 2)
    await assert_books_balance(db)


async def test_claim_decisions_and_their_refusals(db: Database, cast: dict[str, Person]) -> None:
    v, cadre, other = cast["volunteer"], cast["cadre"], cast["other_cadre"]
    p = policy()
    async with db.begin() as s:
        assert (
            await claims.submit_claim(
                s, p, cast["inspector"].id, "patrol", PhotoIn("p", "u"), "x", now=T0
            )
            == ClaimRefusal.not_volunteer
        )
        assert (
            await claims.submit_claim(s, p, v.id, "dancing", PhotoIn("p", "u"), "x", now=T0)
            == ClaimRefusal.unknown_activity
        )
        assert (
            await claims.submit_claim(s, p, v.id, "patrol", PhotoIn("p", "u"), "  \n ", now=T0)
            == ClaimRefusal.needs_text
        )
        claim = await claims.submit_claim(
            s, p, v.id, "patrol", PhotoIn("p", "u"), "巡查河道\n一圈", now=T0
        )
    assert isinstance(claim, ClaimView) and claim.text == "巡查河道 一圈"
    async with db.begin() as s:
        assert (
            await claims.approve_claim(s, p, claim.id, other.id, now=T0) == ClaimRefusal.not_cadre
        )
        assert await claims.approve_claim(s, p, claim.id, v.id, now=T0) == ClaimRefusal.own_claim
        assert await claims.approve_claim(s, p, 999_999, cadre.id, now=T0) == ClaimRefusal.not_found
        assert (
            await claims.refuse_claim(s, claim.id, cadre.id, " ", now=T0)
            == ClaimRefusal.needs_reason
        )
    async with db.begin() as s:
        approved = await claims.approve_claim(s, p, claim.id, cadre.id, now=T0)
    assert isinstance(approved, tuple) and approved[1].entry.amount == 1
    async with db.begin() as s:
        again = await claims.approve_claim(s, p, claim.id, cadre.id, now=T0)
        refused = await claims.refuse_claim(s, claim.id, cadre.id, "照片不清", now=T0)
    assert isinstance(again, Decided) and again.claim.status == "approved"
    assert isinstance(refused, Decided) and again.claim.decided_by_name == "陈干部"
    assert await _entries(db, v) == [("activity", 1, 1)]


async def test_no_cadre_no_claim(db: Database) -> None:
    lonely = await person(db, "孤志愿", (Role.volunteer, "NH-BH-01"))
    async with db.begin() as s:
        assert await claims.can_claim(s, lonely.id) == ClaimRefusal.no_cadre
    # A volunteer who is their village's only cadre cannot approve their own claims either.
    both = await person(db, "身兼", (Role.volunteer, "NH-XS-02"), (Role.cadre, "NH-XS-02"))
    async with db.begin() as s:
        assert await claims.can_claim(s, both.id) == ClaimRefusal.no_cadre


async def test_checkout_refusals_change_nothing(db: Database, cast: dict[str, Person]) -> None:
    v, shop, admin = cast["volunteer"], cast["shop"], cast["admin"]
    p = policy()
    async with db.begin() as s:
        refused = await redemptions.issue_code(s, p, v.id, now=T0)
    assert isinstance(refused, redemptions.IssueRefused)
    assert refused.refusal is redemptions.IssueRefusal.no_points
    await _correct(db, v, 10, admin)
    async with db.begin() as s:
        issued = await redemptions.issue_code(s, p, v.id, now=T0)
    assert isinstance(issued, IssuedCode) and len(issued.code) == 6 and issued.code.isdigit()
    assert issued.expires_at == T0 + timedelta(minutes=10)

    async def attempt(code: str, amount: int, when: datetime = T0, who: Person = shop) -> Any:
        before = await books(db)
        async with db.begin() as s:
            result = await redemptions.checkout(s, p, who.id, None, code, amount, now=when)
        if isinstance(result, CheckoutRefused):
            assert await books(db) == before
        return result

    wrong = "000000" if issued.code != "000000" else "111111"
    assert (await attempt(wrong, 1)).refusal is CheckoutRefusal.unknown
    too_large = await attempt(issued.code, 11)
    assert too_large.refusal is CheckoutRefusal.too_large and too_large.balance == 10
    assert (await attempt(issued.code, 1, who=v)).refusal is CheckoutRefusal.own_code
    late = T0 + timedelta(minutes=10)
    assert (await attempt(issued.code, 1, late)).refusal is CheckoutRefusal.expired
    receipt = await attempt(issued.code, 10, T0 + timedelta(minutes=9))
    assert isinstance(receipt, Receipt) and receipt.balance == 0 and receipt.amount == 10
    assert receipt.volunteer_name == "赵志愿" and receipt.shop_name == "孙超市"
    used = await attempt(issued.code, 1, T0 + timedelta(minutes=9))
    assert used.refusal is CheckoutRefusal.used
    assert used.used_at == T0 + timedelta(minutes=9)
    async with db.begin() as s:
        outcomes = list(
            await s.scalars(select(CheckoutAttempt.outcome).order_by(CheckoutAttempt.id))
        )
        entry = await points.entry_by_id(s, receipt.entry_id)
    assert outcomes == ["unknown", "too_large", "own_code", "expired", "ok", "used"]
    assert entry is not None and entry.kind is Kind.redemption and entry.amount == -10
    assert entry.approver_name == "孙超市" and entry.redemption_id == receipt.redemption_id


async def test_live_codes_per_person_and_digits_drawn_again(
    db: Database, cast: dict[str, Person]
) -> None:
    v, admin = cast["volunteer"], cast["admin"]
    await _correct(db, v, 5, admin)
    p = policy(max_live_codes=2)
    draws = iter([42, 42, 7, 42, 42])  # the second draw collides with a live code: drawn again

    def rigged(_n: int) -> int:
        return next(draws)

    async with db.begin() as s:
        first = await redemptions.issue_code(s, p, v.id, now=T0, randbelow=rigged)
        second = await redemptions.issue_code(s, p, v.id, now=T0, randbelow=rigged)
        third = await redemptions.issue_code(s, p, v.id, now=T0, randbelow=rigged)
    assert isinstance(first, IssuedCode) and first.code == "000042"
    assert isinstance(second, IssuedCode) and second.code == "000007"
    assert isinstance(third, redemptions.IssueRefused)
    assert third.until == T0 + timedelta(minutes=10)
    later = T0 + timedelta(minutes=11)  # both expired: 000042 may be drawn again
    async with db.begin() as s:
        again = await redemptions.issue_code(s, p, v.id, now=later, randbelow=rigged)
    assert isinstance(again, IssuedCode) and again.code == "000042"
    async with db.begin() as s:
        rows = (await s.execute(select(RedemptionCode.code, RedemptionCode.live_code))).all()
    assert sorted(rows, key=str) == sorted(
        [("000042", None), ("000007", None), ("000042", "000042")], key=str
    )
    # The newest code with those digits decides: the live one is taken, not "expired".
    async with db.begin() as s:
        receipt = await redemptions.checkout(s, p, cast["shop"].id, None, "000042", 2, now=later)
    assert isinstance(receipt, Receipt)


async def test_a_guessing_shop_is_locked_out(db: Database, cast: dict[str, Person]) -> None:
    v, shop, other_shop, admin = cast["volunteer"], cast["shop"], cast["other_shop"], cast["admin"]
    await _correct(db, v, 5, admin)
    p = policy(checkout_failures_per_hour=3)
    async with db.begin() as s:
        issued = await redemptions.issue_code(s, p, v.id, now=T0)
    assert isinstance(issued, IssuedCode)
    guesses = [f"{n:06d}" for n in range(100, 110) if f"{n:06d}" != issued.code]
    for i, guess in enumerate(guesses[:3]):
        async with db.begin() as s:
            result = await redemptions.checkout(
                s, p, shop.id, None, guess, 1, now=T0 + timedelta(minutes=i)
            )
        assert isinstance(result, CheckoutRefused) and result.refusal is CheckoutRefusal.unknown
    async with db.begin() as s:  # now even the right code is refused, and nothing moves
        locked = await redemptions.checkout(
            s, p, shop.id, None, issued.code, 1, now=T0 + timedelta(minutes=5)
        )
    assert isinstance(locked, CheckoutRefused) and locked.refusal is CheckoutRefusal.locked
    assert locked.until == T0 + timedelta(hours=1)
    assert await _balance(db, v) == 5
    async with db.begin() as s:  # another shop is not locked
        ok = await redemptions.checkout(
            s, p, other_shop.id, None, issued.code, 1, now=T0 + timedelta(minutes=6)
        )
    assert isinstance(ok, Receipt)


async def test_the_database_refuses_a_negative_balance(
    db: Database, cast: dict[str, Person]
) -> None:
    v = cast["volunteer"]
    await _correct(db, v, 3, cast["admin"])
    with pytest.raises((IntegrityError, DBAPIError)):
        async with db.begin() as s:
            await s.execute(
                update(PointsAccount).where(PointsAccount.person_id == v.id).values(balance=-1)
            )
    with pytest.raises((IntegrityError, DBAPIError)):  # an earning cannot be negative
        async with db.begin() as s:
            await s.execute(
                text(
                    "INSERT INTO points_entries (person_id, kind, amount, nominal, at) "
                    "VALUES (:p, 'activity', -1, -1, :at)"
                ),
                {"p": v.id, "at": T0.replace(tzinfo=None)},
            )
    assert await _balance(db, v) == 3


async def test_corrections(db: Database, cast: dict[str, Person]) -> None:
    v, admin = cast["volunteer"], cast["admin"]
    async with db.begin() as s:
        refused = await points.correct(s, v.id, -1, admin_id=admin.id, reason="多记", now=T0)
        no_reason = await points.correct(s, v.id, 5, admin_id=admin.id, reason=" ", now=T0)
    assert isinstance(refused, CorrectionRefused) and refused.refusal.value == "below_zero"
    assert isinstance(no_reason, CorrectionRefused) and no_reason.refusal.value == "needs_reason"
    await _correct(db, v, 7, admin)
    async with db.begin() as s:
        change = await points.correct(s, v.id, -7, admin_id=admin.id, reason="多记", now=T0)
    assert not isinstance(change, CorrectionRefused) and change.balance == 0
    assert change.entry.note == "多记" and change.entry.approver_name == "王主任"
    assert await _entries(db, v) == [("correction", 7, 7), ("correction", -7, -7)]


async def test_statement_ranks_and_leaderboard(db: Database, cast: dict[str, Person]) -> None:
    v, w, cadre = cast["volunteer"], cast["other_volunteer"], cast["cadre"]
    third = await person(db, "孙志愿", (Role.volunteer, VILLAGE))
    p = policy()
    for who, activity in ((v, "cleanup"), (w, "cleanup"), (v, "patrol")):
        async with db.begin() as s:
            claim = await claims.submit_claim(
                s, p, who.id, activity, PhotoIn("p", "u"), "x", now=T0
            )
            assert isinstance(claim, ClaimView)
            assert isinstance(await claims.approve_claim(s, p, claim.id, cadre.id, now=T0), tuple)
    last_month = T0 - timedelta(days=20)  # October: not this month's
    await _correct(db, w, 50, cast["admin"], last_month)  # corrections are not earnings
    async with db.begin() as s:
        mine = await points_reports.statement(s, v.id, now=T0, zone=ZONE)
        theirs = await points_reports.statement(s, w.id, now=T0, zone=ZONE)
        nobody = await points_reports.statement(s, third.id, now=T0, zone=ZONE)
        start, end = month_window(T0, ZONE)
        boards = await points_reports.leaderboard(s, start, end)
    assert (mine.balance, mine.earned_month, mine.rank, mine.volunteers) == (6, 6, 1, 3)
    assert [e.kind for e in mine.entries] == [Kind.activity, Kind.activity]
    assert mine.village_name == "东桥村"
    assert (theirs.balance, theirs.earned_month, theirs.rank) == (55, 5, 2)
    assert (nobody.rank, nobody.earned_month) == (3, 0)
    board = {b.village_name: b for b in boards}
    assert [(line.rank, line.name, line.points) for line in board["东桥村"].lines] == [
        (1, "赵志愿", 6),
        (2, "钱志愿", 5),
    ]
    assert board["河口村"].lines == []


async def test_volunteer_activity_in_a_window(db: Database, cast: dict[str, Person]) -> None:
    v, cadre, shop = cast["volunteer"], cast["cadre"], cast["shop"]
    p = policy()
    ids = []
    for activity in ("cleanup", "patrol", "publicity"):
        async with db.begin() as s:
            claim = await claims.submit_claim(s, p, v.id, activity, PhotoIn("p", "u"), "x", now=T0)
            assert isinstance(claim, ClaimView)
            ids.append(claim.id)
    async with db.begin() as s:
        await claims.approve_claim(s, p, ids[0], cadre.id, now=T0)
        await claims.approve_claim(s, p, ids[1], cadre.id, now=T0)
        await claims.refuse_claim(s, ids[2], cadre.id, "重复", now=T0)
    code = await _report(db, v)
    await _assign(db, code, cast)
    await _move(db, code, Action.reject, cast["admin"], T0, reason="误报")
    async with db.begin() as s:
        issued = await redemptions.issue_code(s, p, v.id, now=T0)
        assert isinstance(issued, IssuedCode)
        assert isinstance(
            await redemptions.checkout(s, p, shop.id, None, issued.code, 4, now=T0), Receipt
        )
    async with db.begin() as s:
        day = timedelta(days=1)
        week = await points_reports.volunteer_activity(s, T0 - day, T0 + day)
        before = await points_reports.volunteer_activity(s, T0 - 9 * day, T0 - day)
        report = await redemptions.shop_report(
            s, shop.id, T0 - timedelta(hours=1), T0 + timedelta(hours=1)
        )
    assert week == points_reports.VolunteerActivity(
        claims_submitted=3,
        claims_approved=2,
        claims_refused=1,
        points_earned=5 + 1 + 2,
        points_reversed=2,
        points_redeemed=4,
        redemptions=1,
        volunteers_earning=1,
    )
    assert before == points_reports.VolunteerActivity(0, 0, 0, 0, 0, 0, 0, 0)
    assert (report.count, report.total) == (1, 4)
    assert [(line.volunteer_name, line.amount) for line in report.lines] == [("赵志愿", 4)]
    async with db.begin() as s:
        assert await s.scalar(select(func.count()).select_from(PointsEntry)) == 5
