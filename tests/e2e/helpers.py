"""Reading the database back in end-to-end tests (the tests' own eyes, not the bot's code)."""

from __future__ import annotations

import asyncio
import re
import time

from sqlalchemy import func, select

import models
from bot.harness import Harness
from bot.sending.ratelimit import ChatRateLimiter
from bot.services import people
from bot.services.roles import Role

LINK = re.compile(r"https://t\.me/\w+\?start=([A-Za-z0-9_-]+)")


def invite_code(text: str) -> str:
    match = LINK.search(text)
    assert match, f"no invite link in {text!r}"
    return match.group(1)


# The inbox keeps every update received, refused or not: bookkeeping of the intake, not state.
NOT_STATE = frozenset({"inbox"})


async def table_counts(h: Harness) -> dict[str, int]:
    """Rows per table of the bot's state (a refusal must change none of them)."""
    counts = {}
    async with h.db.begin() as session:
        for table in models.Base.metadata.sorted_tables:
            if table.name in NOT_STATE:
                continue
            counts[table.name] = await session.scalar(select(func.count()).select_from(table)) or 0
    return counts


async def roles_of(h: Harness, telegram_id: int) -> set[tuple[str, str | None]]:
    async with h.db.begin() as session:
        rows = await session.execute(
            select(models.RoleGrant.role, models.Area.code)
            .join(models.Person, models.Person.id == models.RoleGrant.person_id)
            .outerjoin(models.Area, models.Area.id == models.RoleGrant.area_id)
            .where(models.Person.telegram_id == telegram_id)
        )
        return {(role, code) for role, code in rows}


async def binding(h: Harness, chat_id: int) -> str | None:
    async with h.db.begin() as session:
        code: str | None = await session.scalar(
            select(models.Area.code)
            .join(models.Chat, models.Chat.area_id == models.Area.id)
            .where(models.Chat.telegram_chat_id == chat_id)
        )
        return code


def problem_code(h: Harness, seq: int) -> str:
    """The code the ``seq``-th problem of this (local) year gets: never a hard-coded year."""
    services = h.services
    year = services.now().astimezone(services.settings.zone).year
    return f"{services.rules.problem_code_prefix}-{year}-{seq:04d}"


async def grant(h: Harness, telegram_id: int, role: Role, area_code: str) -> None:
    """Give someone a role directly (what joining by an invite link does)."""
    async with h.db.begin() as session:
        person = await people.ensure_person(session, telegram_id, str(telegram_id), None)
        area_id = await session.scalar(select(models.Area.id).where(models.Area.code == area_code))
        await people.grant_role(session, person.id, role, area_id)


def beyond_retries(h: Harness, chat_id: int, method: str = "sendMessage") -> None:
    """The next ``method`` calls to ``chat_id`` fail (502) more often than the rate limiter
    retries: the update making them fails, and runs again from the inbox."""
    limiter = h.app.bot.rate_limiter
    assert isinstance(limiter, ChatRateLimiter)
    h.sb.inject_faults("5xx", count=limiter.max_retries + 1, method=method, chat_id=chat_id)


async def updates_done(h: Harness, timeout: float = 10.0) -> list[str]:
    """Once no update waits to run (again): how each ended, "done" or "parked"."""
    deadline = time.monotonic() + timeout
    while True:
        async with h.db.begin() as session:
            statuses = list(await session.scalars(select(models.InboxUpdate.status)))
        if "pending" not in statuses:
            return statuses
        assert time.monotonic() < deadline, "updates still pending"
        await asyncio.sleep(0.05)
