"""The problem service on a real database (SQLite and PostgreSQL): numbering per year, the
responsible subject checked, one tap accepted once across processes."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

import models
from bot.db import Database
from bot.services import people, problems
from bot.services.org import import_org, parse_org_file
from bot.services.problem_machine import Action, Refusal, Status
from bot.services.problems import PhotoIn, ProblemView, ReportIn
from bot.services.roles import Role

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
_keys = itertools.count(1)


@dataclass(frozen=True)
class World:
    admin: int  # person ids
    reporter: int
    areas: dict[str, int]  # area code -> id


async def _world(db: Database) -> World:
    async with db.begin() as s:
        await import_org(s, parse_org_file(EXAMPLES / "org.yaml"))
        areas = {
            code: id_ for code, id_ in await s.execute(select(models.Area.code, models.Area.id))
        }
        admin = await people.ensure_person(s, 81_001, "Admin", None)
        await people.grant_role(s, admin.id, Role.admin, areas["NH"])
        reporter = await people.ensure_person(s, 81_002, "Reporter", None)
        return World(admin.id, reporter.id, areas)


async def _report(db: Database, w: World, now: datetime) -> ProblemView:
    key = next(_keys)
    async with db.begin() as s:
        result = await problems.report_problem(
            s,
            ReportIn(w.reporter, "noise", "", [PhotoIn(f"f{key}", f"u{key}")], -1, f"m:{key}"),
            now=now,
            code_prefix="NH",
            zone_year=problems.code_year(now, SHANGHAI),
        )
    return result.problem


async def _counts(db: Database) -> tuple[int, int | None, str]:
    """History rows, and the first problem's subject and status."""
    async with db.begin() as s:
        events = await s.scalar(select(func.count()).select_from(models.ProblemEvent)) or 0
        problem = (await s.scalars(select(models.Problem).order_by(models.Problem.id))).first()
        assert problem is not None
        return events, problem.subject_id, problem.status


@pytest.mark.parametrize(
    ("utc", "year"),
    [
        (datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC), 2026),  # 23:59:59 in Shanghai
        (datetime(2026, 12, 31, 16, 0, 0, tzinfo=UTC), 2027),  # midnight in Shanghai
        (datetime(2027, 1, 1, 3, 0, 0, tzinfo=UTC), 2027),
    ],
)
def test_the_code_year_is_the_local_year(utc: datetime, year: int) -> None:
    assert problems.code_year(utc, SHANGHAI) == year


async def test_numbering_restarts_each_local_year(db: Database) -> None:
    w = await _world(db)
    eve = datetime(2026, 12, 31, 15, 58, tzinfo=UTC)  # 23:58 on New Year's Eve in Shanghai
    codes = [(await _report(db, w, eve + timedelta(minutes=m))).code for m in (0, 1, 3, 4)]
    assert codes == ["NH-2026-0001", "NH-2026-0002", "NH-2027-0001", "NH-2027-0002"]


async def test_assign_needs_a_real_subject(db: Database) -> None:
    """A forged button naming a village, the district or no area at all is refused and changes
    nothing (before, a village became the responsible subject, and a missing id crashed)."""
    w = await _world(db)
    code = (await _report(db, w, NOW)).code
    deadline = NOW + timedelta(days=3)
    before = await _counts(db)
    for area_id in (w.areas["NH-DQ-01"], w.areas["NH"], 999_999):
        async with db.begin() as s:
            result = await problems.transition(
                s, code, Action.assign, w.admin, now=NOW, subject_id=area_id, deadline=deadline
            )
        assert result is Refusal.needs_subject
        assert await _counts(db) == before
    async with db.begin() as s:
        done = await problems.transition(
            s, code, Action.assign, w.admin, now=NOW, subject_id=w.areas["NH-DQ"], deadline=deadline
        )
    assert isinstance(done, ProblemView) and done.subject_name == "东桥镇"
    assert done.status is Status.rectifying


async def test_one_tap_is_accepted_once_across_processes(db: Database) -> None:
    """Two processes handling the same tap: the second waits for the first's row lock and then
    sees the new status (on PostgreSQL; SQLite lets only one writer in at a time anyway)."""
    if db.dialect == "sqlite":
        pytest.skip("SQLite serialises writers itself")
    w = await _world(db)
    code = (await _report(db, w, NOW)).code

    async def reject(reason: str) -> ProblemView | Refusal | None:
        async with db.begin() as s:
            return await problems.transition(
                s, code, Action.reject, w.admin, now=NOW, reason=reason
            )

    async with db.begin() as first:
        accepted = await problems.transition(
            first, code, Action.reject, w.admin, now=NOW, reason="one"
        )
        second = asyncio.create_task(reject("two"))
        await asyncio.sleep(0.5)
        assert not second.done()  # held at the row lock until the first commits
    assert isinstance(accepted, ProblemView)
    assert await second is Refusal.wrong_status
    async with db.begin() as s:
        rejections = await s.scalar(
            select(func.count())
            .select_from(models.ProblemEvent)
            .where(models.ProblemEvent.action == Action.reject.value)
        )
    assert rejections == 1


async def test_a_refused_photo_waits_and_is_given_up_without_blocking_others(
    db: Database,
) -> None:
    from bot.services import media

    w = await _world(db)
    await _report(db, w, NOW)  # photo 1: will be refused again and again
    await _report(db, w, NOW)  # photo 2: reported later
    async with db.begin() as s:
        first, second = (p.photo_id for p in await media.pending_downloads(s, NOW))
        assert await media.mark_refused(s, first, NOW) is False
    async with db.begin() as s:
        # The refused photo waits its minute; the later one is due at once.
        assert [p.photo_id for p in await media.pending_downloads(s, NOW)] == [second]
        later = NOW + media.retry_delay(1)
        assert [p.photo_id for p in await media.pending_downloads(s, later)] == [second, first]
    moment = NOW
    for attempt in range(2, media.MAX_DOWNLOAD_ATTEMPTS + 1):
        moment += media.retry_delay(attempt)
        async with db.begin() as s:
            given_up = await media.mark_refused(s, first, moment)
        assert given_up is (attempt == media.MAX_DOWNLOAD_ATTEMPTS)
    async with db.begin() as s:
        far_later = moment + timedelta(days=30)
        assert [p.photo_id for p in await media.pending_downloads(s, far_later)] == [second]
        photo = await s.get(models.ProblemPhoto, first)
        assert photo is not None and photo.sha256 == media.UNAVAILABLE
        assert photo.download_attempts == media.MAX_DOWNLOAD_ATTEMPTS
