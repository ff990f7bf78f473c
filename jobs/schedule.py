"""Scheduled jobs, once per period, across restarts.

Each scheduled job (the morning reminders, the weekly ranking, the monthly leaderboard, the
leaders' summaries) is a ``ScheduledJob``: when it is due (``Every``: daily, weekly or monthly
at a local time in the configured zone) and a ``write`` that puts the period's messages into
the outbox under keys of kind, recipient and period, so that writing a period twice writes
nothing new.

The job queue fires each job at its time. A period it could not fire in (the bot was down, or
stopped at that moment) is caught up on start and by a tick every ``TICK_S`` seconds, while
that period is still the current one and not in quiet hours: a Monday post missed at 09:00 goes
out when the bot is back on Monday (or Tuesday), never in the night and never next week; a
morning reminder missed goes out later that day, not the next morning beside the next day's.
The table ``schedule_runs`` keeps each (job, period) written, so a catch-up never runs a period
that was written, and a period whose write failed half-way is run again (its rows are kept
once by their keys). Several processes may run all this at once: the keys keep each message
once, and ``schedule_runs`` is written with "insert unless there".

The tick runs further hooks too (due announcements are released there).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from telegram.ext import Application

from bot.context import Context, Services
from bot.rules import Rules
from bot.services.outbox import is_quiet
from bot.services.windows import week_key
from models import ScheduleRun

log = logging.getLogger(__name__)

TICK_JOB = "schedule-tick"
TICK_S = 30  # how soon a caught-up period or a due announcement goes out, at most
# A job the job queue could not start on time (the machine was busy) still runs this late.
MISFIRE_GRACE_S = 3600


class Cadence(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


@dataclass(frozen=True)
class Every:
    """When a job is due, in local time: daily at ``at``; weekly on ``weekday`` (Monday 0);
    monthly on ``day``."""

    cadence: Cadence
    at: time
    weekday: int = 0
    day: int = 1


def period_of(every: Every, local: datetime) -> tuple[str, datetime]:
    """The period that holds the local moment ``local`` (its key: ``2026-11-23``,
    ``2026-W48``, ``2026-11``) and the local moment the job is due in it."""
    today = local.date()
    due_day: date
    match every.cadence:
        case Cadence.daily:
            key, due_day = today.isoformat(), today
        case Cadence.weekly:
            monday = today - timedelta(days=today.weekday())
            key, due_day = week_key(today), monday + timedelta(days=every.weekday)
        case Cadence.monthly:
            key, due_day = f"{today.year}-{today.month:02d}", today.replace(day=every.day)
    return key, datetime.combine(due_day, every.at, local.tzinfo)


def catch_up_period(
    every: Every, local: datetime, quiet_start: time, quiet_end: time
) -> str | None:
    """The period to catch up at the local moment ``local``, if any: the current one, once its
    time has come, outside quiet hours. (Whether it was written is the database's to say.)"""
    key, due = period_of(every, local)
    if local < due or is_quiet(local.time(), quiet_start, quiet_end):
        return None
    return key


@dataclass(frozen=True)
class ScheduledJob:
    name: str  # the job queue's name for it, and its name in schedule_runs
    every: Callable[[Rules], Every | None]  # None: switched off in the rules
    write: Callable[[Services], Awaitable[object]]


TickHook = Callable[[Services], Awaitable[object]]


async def is_done(session: AsyncSession, job: str, period: str) -> bool:
    found = await session.scalar(
        select(ScheduleRun.id).where(ScheduleRun.job == job, ScheduleRun.period == period)
    )
    return found is not None


async def mark_done(session: AsyncSession, job: str, period: str, *, now: datetime) -> None:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(ScheduleRun)
        .values(job=job, period=period, done_at=now)
        .on_conflict_do_nothing(index_elements=["job", "period"])
    )


async def run_period(services: Services, job: ScheduledJob, period: str) -> None:
    """Write the period's messages, then record the period as written."""
    await job.write(services)
    async with services.db.begin() as session:
        await mark_done(session, job.name, period, now=services.now())


async def fire(services: Services, job: ScheduledJob) -> None:
    """The job at its time (the job queue calls this): the period that holds now."""
    every = job.every(services.rules)
    if every is not None:
        period, _due = period_of(every, services.local(services.now()))
        await run_period(services, job, period)


async def catch_up(services: Services, jobs: Sequence[ScheduledJob]) -> list[str]:
    """Run each job whose current period is due and not yet written; the names run."""
    local = services.local(services.now())
    schedules = services.rules.schedules
    ran: list[str] = []
    for job in jobs:
        every = job.every(services.rules)
        if every is None:
            continue
        period = catch_up_period(every, local, schedules.quiet_start, schedules.quiet_end)
        if period is None:
            continue
        async with services.db.begin() as session:
            if await is_done(session, job.name, period):
                continue
        try:
            await run_period(services, job, period)
        except Exception:  # one job failing must not keep the others from catching up
            log.exception(
                "catching up %s for %s failed; the next tick tries again", job.name, period
            )
            continue
        log.info("caught up %s for %s", job.name, period)
        ran.append(job.name)
    return ran


async def tick(services: Services, jobs: Sequence[ScheduledJob], hooks: Sequence[TickHook]) -> None:
    """What runs on start and every ``TICK_S`` seconds."""
    await catch_up(services, jobs)
    for hook in hooks:
        try:
            await hook(services)
        except Exception:
            log.exception("schedule tick: %s failed", getattr(hook, "__name__", hook))


def ptb_day(monday_first: int) -> int:
    """The rules count Monday as 0; python-telegram-bot counts Sunday as 0."""
    return (monday_first + 1) % 7


def register(
    app: Application[Any, Any, Any, Any, Any, Any],
    jobs: Sequence[ScheduledJob],
    hooks: Sequence[TickHook] = (),
) -> None:
    services: Services = app.bot_data["services"]
    queue = app.job_queue
    if queue is None:
        return
    zone = services.settings.zone
    grace = {"misfire_grace_time": MISFIRE_GRACE_S, "coalesce": True}
    for job in jobs:
        every = job.every(services.rules)
        if every is None:
            continue

        async def on_time(context: Context, job: ScheduledJob = job) -> None:
            await fire(context.services, job)

        at = every.at.replace(tzinfo=zone)
        match every.cadence:
            case Cadence.daily:
                queue.run_daily(on_time, at, name=job.name, job_kwargs=grace)
            case Cadence.weekly:
                queue.run_daily(
                    on_time, at, days=(ptb_day(every.weekday),), name=job.name, job_kwargs=grace
                )
            case Cadence.monthly:
                queue.run_monthly(on_time, at, every.day, name=job.name, job_kwargs=grace)

    async def on_tick(context: Context) -> None:
        await tick(context.services, jobs, hooks)

    queue.run_repeating(on_tick, interval=TICK_S, first=TICK_S, name=TICK_JOB)
