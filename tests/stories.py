"""Problems with a known past, made through the real services (report, assign, submit, check,
extend, reject) at chosen moments: the data the ranking and ledger tests count."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services import people, problems
from bot.services.org import import_org, parse_org_file
from bot.services.points import Policy
from bot.services.problem_machine import Action
from bot.services.problems import PhotoIn, ReportIn
from bot.services.roles import Role
from models import Area

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHANGHAI = ZoneInfo("Asia/Shanghai")
_photos = itertools.count(1)


def local(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A Shanghai wall-clock moment as the aware time the services take."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@dataclass
class World:
    admin_id: int
    areas: dict[str, int]  # area code → id
    reporter_id: int
    codes: list[str] = field(default_factory=list)


async def make_world(session: AsyncSession, admin_telegram_id: int = 91_001) -> World:
    await import_org(session, parse_org_file(EXAMPLES / "org.yaml"))
    areas = {a.code: a.id for a in (await session.scalars(select(Area))).all()}
    admin = await people.ensure_person(session, admin_telegram_id, "王主任", None)
    await people.grant_role(session, admin.id, Role.admin, areas["NH"])
    reporter = await people.ensure_person(session, admin_telegram_id + 1, "赵志愿", None)
    await people.grant_role(session, reporter.id, Role.volunteer, areas["NH-DQ-01"])
    return World(admin.id, areas, reporter.id)


def _photo() -> PhotoIn:
    n = next(_photos)
    return PhotoIn(f"story-photo-{n}", f"story-unique-{n}")


async def story(
    session: AsyncSession,
    world: World,
    subject: str | None,
    reported: datetime,
    *steps: tuple[str, datetime] | tuple[str, datetime, datetime],
    category: str = "road_dust",
    points: Policy | None = None,
) -> str:
    """Report a problem at ``reported``, then make each step at its moment:
    ("assign", at, deadline), ("submit", at), ("pass", at), ("fail", at), ("reject", at),
    ("extend", at, new deadline) (asked and approved at once). Returns its code. With
    ``points``, the reporter's points are written as the bot writes them."""
    result = await problems.report_problem(
        session,
        ReportIn(
            reporter_id=world.reporter_id,
            category=category,
            description=f"story {len(world.codes) + 1}",
            photos=[_photo()],
            source_chat_id=None,
            source_key=None,
            village_id=world.areas["NH-DQ-01"],
            latitude=30.75,
            longitude=120.76 + len(world.codes) * 0.01,  # far apart: no duplicate flags
        ),
        now=reported,
        code_prefix="NH",
        zone_year=reported.astimezone(SHANGHAI).year,
    )
    code = result.problem.code
    world.codes.append(code)
    for step in steps:
        name, at = step[0], step[1]
        extra = step[2] if len(step) == 3 else None
        kwargs: dict[str, Any] = {}
        match name:
            case "assign":
                action = Action.assign
                kwargs = {"subject_id": world.areas[subject or "NH-DQ"], "deadline": extra}
            case "submit":
                action, kwargs = Action.submit, {"after_photos": [_photo()], "reason": "已整改"}
            case "pass":
                action = Action.pass_check
            case "fail":
                action, kwargs = Action.fail_check, {"reason": "整改不到位"}
            case "reject":
                action, kwargs = Action.reject, {"reason": "重复上报"}
            case "extend":
                outcome = await problems.transition(
                    session,
                    code,
                    Action.request_extension,
                    world.admin_id,
                    now=at,
                    deadline=extra,
                )
                assert not isinstance(outcome, str) and outcome is not None, outcome
                action = Action.approve_extension
            case _:
                raise ValueError(name)
        outcome = await problems.transition(
            session,
            code,
            action,
            world.admin_id,
            now=at + timedelta(seconds=1),
            points=points,
            **kwargs,
        )
        assert outcome is not None and not isinstance(outcome, str), (code, name, outcome)
    return code
