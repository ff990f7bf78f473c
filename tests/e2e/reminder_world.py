"""Setting up reminders' worlds through the domain's own services: people with roles, bound
groups, problems assigned with a chosen deadline and brought to a chosen status."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

import models
from bot.db import Database
from bot.harness import Harness
from bot.sandbox import Sandbox
from bot.services import chats, outbox, people, problems
from bot.services.problem_machine import Action, Status
from bot.services.problems import PhotoIn, ReportIn
from bot.services.roles import Role
from tests.e2e.conftest import ADMIN

SHANGHAI = ZoneInfo("Asia/Shanghai")


class World(Protocol):
    """What the helpers need: a Harness, or a stand-in and a database without the bot."""

    @property
    def sb(self) -> Sandbox: ...
    @property
    def db(self) -> Database: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A wall time in Shanghai, as the UTC instant the database stores."""
    return datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI).astimezone(UTC)


async def area_id(h: World, code: str) -> int:
    async with h.db.begin() as session:
        found: int | None = await session.scalar(
            select(models.Area.id).where(models.Area.code == code)
        )
    assert found is not None, code
    return found


async def person(h: World, telegram_id: int, name: str, role: Role, area: str) -> int:
    """A person with ``role`` in ``area`` who has opened the bot; their person id."""
    if telegram_id not in h.sb.users:
        h.sb.add_user(telegram_id, name)
    h.sb.open_private_chat(telegram_id)
    where = await area_id(h, area)
    async with h.db.begin() as session:
        row = await people.ensure_person(session, telegram_id, name, None, private=True)
        await people.grant_role(session, row.id, role, where)
        return row.id


async def admin(h: World) -> int:
    return await person(h, ADMIN, "王主任", Role.admin, "NH")


async def bind(h: World, chat_id: int, area: str) -> None:
    by = await admin(h)
    where = await area_id(h, area)
    async with h.db.begin() as session:
        await chats.bind_group(session, chat_id, "", where, by_person_id=by, now=h.clock())


async def problem(
    h: World,
    deadline: datetime,
    *,
    subject: str = "NH-DQ",
    status: Status = Status.rectifying,
    category: str = "open_burning",
    liaison: int | None = None,
) -> str:
    """A problem assigned a week before ``deadline`` and brought to ``status``; its code.
    ``liaison`` (a person id of the subject's liaison) submits it for pending_check/closed."""
    by = await admin(h)
    assigned_at = deadline - timedelta(days=7)
    async with h.db.begin() as session:
        report = await problems.report_problem(
            session,
            ReportIn(by, category, "test", [], None, None),
            now=assigned_at - timedelta(hours=1),
            code_prefix="NH",
            zone_year=2026,
        )
        code = report.problem.code
        assigned = await problems.transition(
            session,
            code,
            Action.assign,
            by,
            now=assigned_at,
            subject_id=await area_id(h, subject),
            deadline=deadline,
        )
        assert isinstance(assigned, problems.ProblemView), assigned
        if status in (Status.pending_check, Status.closed):
            assert liaison is not None
            photo = PhotoIn(f"after-{code}", f"after-{code}")
            submitted = await problems.transition(
                session, code, Action.submit, liaison, now=assigned_at, after_photos=[photo]
            )
            assert isinstance(submitted, problems.ProblemView), submitted
        if status is Status.closed:
            closed = await problems.transition(
                session, code, Action.pass_check, by, now=assigned_at
            )
            assert isinstance(closed, problems.ProblemView), closed
    return code


async def rows(h: World) -> list[models.OutboxMessage]:
    async with h.db.begin() as session:
        return list(
            await session.scalars(select(models.OutboxMessage).order_by(models.OutboxMessage.id))
        )


async def row_count(h: World) -> int:
    async with h.db.begin() as session:
        return await session.scalar(select(func.count()).select_from(models.OutboxMessage)) or 0


async def drained(h: World, timeout: float = 15.0) -> None:
    """Until no row is pending (every row sent or given up)."""
    deadline = time.monotonic() + timeout
    while True:
        async with h.db.begin() as session:
            pending = await outbox.backlog(session)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending} outbox rows still pending after {timeout}s")
        await asyncio.sleep(0.05)


async def sender_looked(h: Harness, times: int = 2, timeout: float = 10.0) -> None:
    """Until the sender has made ``times`` more claim passes: it had its chance to send. Each
    pass is asked for (as new rows would) rather than waited for at the idle tick."""
    deadline = time.monotonic() + timeout
    for _ in range(times):
        target = h.sender.passes + 1
        h.sender.wake()
        while h.sender.passes < target:
            if time.monotonic() > deadline:
                raise AssertionError("the outbox sender stopped looking")
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # what it claimed in its last pass has had time to go out


def texts_to(h: Harness, chat_id: int, containing: str) -> list[str]:
    return [m.content for m in h.sb.sent(chat_id) if containing in m.content]


def deliveries(h: Harness, containing: str) -> Counter[int]:
    """How many messages containing ``containing`` each chat got."""
    return Counter(m.chat_id for m in h.sb.sent() if containing in m.content)
