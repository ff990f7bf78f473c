"""Any sequence of earnings (problems assigned, closed, rejected), claims, approvals,
refusals, codes, redemptions and corrections, on a real database (SQLite and PostgreSQL),
keeps sum(ledger) == balance >= 0 for every person, keeps every day's earnings within the cap,
and writes nothing when it refuses."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.db import Database
from bot.services import claims, points, problems, redemptions
from bot.services.claims import ClaimView
from bot.services.points import EARNINGS, CorrectionRefused
from bot.services.problem_machine import Action
from bot.services.problems import PhotoIn, ProblemView, ReportIn
from bot.services.redemptions import CheckoutRefused, IssuedCode, Receipt
from bot.services.roles import Role
from models import PointsEntry
from tests.integration.points_world import (
    T0,
    Person,
    assert_books_balance,
    books,
    cast_of,
    import_areas,
    policy,
)

CAP = 12  # low, so that sequences reach it
POLICY = policy(daily_cap=CAP, max_live_codes=3, checkout_failures_per_hour=1000)
ACTIVITIES = sorted(POLICY.rules.activities)
_examples = itertools.count(1)

# (name, grants): reporters 0-2, the rest act on their work.
CAST = {
    "v1": ((Role.volunteer, "NH-DQ-01"),),
    "v2": ((Role.volunteer, "NH-DQ-01"),),
    "inspector": ((Role.inspector, "NH-DQ"),),
    "cadre": ((Role.cadre, "NH-DQ-01"),),
    "other_cadre": ((Role.cadre, "NH-XS-01"),),
    "admin": ((Role.admin, "NH"),),
    "liaison": ((Role.liaison, "NH-DQ"),),
    "shop": ((Role.shop, "NH-DQ-01"),),
}
REPORTERS = ["v1", "v2", "inspector"]
VOLUNTEERS = ["v1", "v2"]
DECIDERS = ["cadre", "cadre", "other_cadre", "v1"]
SHOPS = ["shop", "shop", "v1"]


@dataclass
class World:
    cast: dict[str, Person]
    subject_id: int
    now: datetime
    problems: list[str] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    claims: list[int] = field(default_factory=list)
    pending: set[int] = field(default_factory=set)
    codes: list[str] = field(default_factory=list)


# Each step is drawn knowing the world so far: mostly an action that can be taken now (those
# that move points first, as Hypothesis favours early choices), on a problem, claim or code
# that can take it; sometimes anything at all with any index or person, for the refusals.
def _index(fitting: list[int]) -> st.SearchStrategy[int]:
    aimed = st.sampled_from(fitting) if fitting else st.integers(0, 9)
    return st.one_of(aimed, aimed, aimed, st.integers(0, 9))


def steps_for(w: World, balances: dict[int, tuple[int, int]]) -> st.SearchStrategy[tuple[Any, ...]]:
    by_status = {
        status: [i for i, code in enumerate(w.problems) if w.status[code] == status]
        for status in ("reported", "rectifying")
    }
    pending = [i for i, claim_id in enumerate(w.claims) if claim_id in w.pending]
    rich = [v for v in VOLUNTEERS if balances.get(w.cast[v].id, (0, 0))[1] > 0]
    params: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
        "checkout": st.tuples(
            _index(list(range(len(w.codes)))[-3:]), st.integers(1, 9), st.sampled_from(SHOPS)
        ),
        "approve": st.tuples(_index(pending), st.sampled_from(DECIDERS)),
        "close": st.tuples(_index(by_status["rectifying"])),
        "assign": st.tuples(_index(by_status["reported"])),
        "reject": st.tuples(_index(by_status["rectifying"] + by_status["reported"])),
        "issue": st.tuples(st.sampled_from(rich or VOLUNTEERS)),
        "claim": st.tuples(st.sampled_from(VOLUNTEERS), st.sampled_from(ACTIVITIES)),
        "report": st.tuples(st.sampled_from(REPORTERS)),
        "correct": st.tuples(st.sampled_from(VOLUNTEERS), st.integers(-12, 12)),
        "refuse": st.tuples(_index(pending), st.sampled_from(DECIDERS)),
        "advance": st.tuples(st.integers(1, 36 * 60)),
    }
    possible = {
        "checkout": bool(w.codes),
        "approve": bool(pending),
        "close": bool(by_status["rectifying"]),
        "assign": bool(by_status["reported"]),
        "reject": bool(by_status["rectifying"] or by_status["reported"]),
        "issue": bool(rich),
        "refuse": bool(pending),
    }
    now = [kind for kind in params if possible.get(kind, True)]
    kinds = st.one_of(st.sampled_from(now), st.sampled_from(now), st.sampled_from(list(params)))
    return kinds.flatmap(lambda kind: params[kind].map(lambda values: (kind, *values)))


async def _world(db: Database) -> World:
    n = next(_examples)
    areas = await import_areas(db)
    made = await cast_of(db, [(f"{name}-{n}", grants) for name, grants in CAST.items()])
    cast = dict(zip(CAST, made, strict=True))
    # Each example on days of its own: earlier examples' codes have expired.
    return World(cast, areas["NH-DQ"], T0 + timedelta(days=3 * n))


def _pick(items: list[Any], index: int) -> Any:
    return items[index % len(items)] if items else None


async def _transition(
    db: Database, w: World, code: str, action: Action, actor: str, **kw: Any
) -> Any:
    async with db.begin() as s:
        return await problems.transition(
            s, code, action, w.cast[actor].id, now=w.now, points=POLICY, **kw
        )


async def _step(db: Database, w: World, step: tuple[Any, ...]) -> bool:
    """Make one step; whether it must leave every balance as it was (a refusal, or a step
    that moves no points)."""
    kind = step[0]
    if kind == "report":
        n = len(w.problems)
        async with db.begin() as s:
            reported = await problems.report_problem(
                s,
                ReportIn(
                    w.cast[str(step[1])].id,
                    "noise",
                    "x",
                    [PhotoIn(f"p{w.now}{n}", f"u{w.now}{n}")],
                    -7,
                    f"{w.cast['admin'].id}:{n}",
                ),
                now=w.now,
                code_prefix="PT",
                zone_year=2026,
            )
        w.problems.append(reported.problem.code)
        w.status[reported.problem.code] = "reported"
        return True
    if kind in ("assign", "close", "reject"):
        code = _pick(w.problems, int(step[1]))
        if code is None:
            return True
        if kind == "assign":
            result = await _transition(
                db,
                w,
                code,
                Action.assign,
                "admin",
                subject_id=w.subject_id,
                deadline=w.now + timedelta(days=3),
            )
        elif kind == "close":
            submitted = await _transition(
                db, w, code, Action.submit, "liaison", after_photos=[PhotoIn("a", "ua")]
            )
            if not isinstance(submitted, ProblemView):
                return True
            result = await _transition(db, w, code, Action.pass_check, "admin")
        else:
            result = await _transition(db, w, code, Action.reject, "admin", reason="不予受理")
        if isinstance(result, ProblemView):
            w.status[code] = result.status.value
            return False
        return True
    if kind == "claim":
        async with db.begin() as s:
            claim = await claims.submit_claim(
                s,
                POLICY,
                w.cast[str(step[1])].id,
                str(step[2]),
                PhotoIn("c", "uc"),
                "做了",
                now=w.now,
            )
        assert isinstance(claim, ClaimView)
        w.claims.append(claim.id)
        w.pending.add(claim.id)
        return True  # a claim alone moves no points
    if kind in ("approve", "refuse"):
        claim_id = _pick(w.claims, int(step[1]))
        if claim_id is None:
            return True
        decider = w.cast[str(step[2])].id
        async with db.begin() as s:
            if kind == "approve":
                decided: Any = await claims.approve_claim(s, POLICY, claim_id, decider, now=w.now)
            else:
                decided = await claims.refuse_claim(s, claim_id, decider, "不符合", now=w.now)
        if isinstance(decided, tuple | ClaimView):
            w.pending.discard(claim_id)
        return not isinstance(decided, tuple)
    if kind == "issue":
        async with db.begin() as s:
            issued = await redemptions.issue_code(s, POLICY, w.cast[str(step[1])].id, now=w.now)
        if isinstance(issued, IssuedCode):
            w.codes.append(issued.code)
        return True
    if kind == "checkout":
        code = _pick(w.codes, int(step[1]))
        if code is None:
            return True
        async with db.begin() as s:
            checked = await redemptions.checkout(
                s, POLICY, w.cast[str(step[3])].id, None, code, int(step[2]), now=w.now
            )
        assert isinstance(checked, Receipt | CheckoutRefused)
        return isinstance(checked, CheckoutRefused)
    if kind == "correct":
        async with db.begin() as s:
            corrected = await points.correct(
                s,
                w.cast[str(step[1])].id,
                int(step[2]),
                admin_id=w.cast["admin"].id,
                reason="更正",
                now=w.now,
            )
        return isinstance(corrected, CorrectionRefused)
    w.now += timedelta(minutes=int(step[1]))
    return True


async def _caps_hold(db: Database) -> None:
    async with db.begin() as s:
        over = (
            await s.execute(
                select(PointsEntry.person_id, PointsEntry.cap_day, func.sum(PointsEntry.amount))
                .where(PointsEntry.kind.in_([k.value for k in EARNINGS]))
                .group_by(PointsEntry.person_id, PointsEntry.cap_day)
                .having(func.sum(PointsEntry.amount) > CAP)
            )
        ).all()
    assert over == [], f"earnings over the daily cap: {over}"


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(length=st.integers(min_value=3, max_value=30), data=st.data())
async def test_any_sequence_keeps_the_books(db: Database, length: int, data: st.DataObject) -> None:
    w = await _world(db)
    before = await books(db)
    for i in range(length):
        step = data.draw(steps_for(w, before), label=f"step {i}")
        refused = await _step(db, w, step)
        after = await books(db)
        if refused:
            assert after == before, f"step {i} {step}: refused, yet balances changed"
        elif after != before:
            event(f"moved points: {step[0]}")
        for pid, (total, balance) in after.items():
            assert total == balance >= 0, f"step {i} {step}: person {pid} {total} vs {balance}"
        before = after
    await assert_books_balance(db)
    await _caps_hold(db)
