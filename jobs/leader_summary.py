"""The leaders' summary: weekly (``schedules.leader_summary_day`` at ``leader_summary_time``,
Monday 08:30 by default) for the week just ended, and, if the rules switch it on
(``schedules.leader_summary_daily``), every other day at the same time for the day before.

Each leader's messages are outbox rows keyed ``summary:<leader>:<period>`` (the chart with the
key figures, then the details): written once per leader and period whatever fires them, sent
through the rate limiter, resumed after a restart. A leader who has never opened the bot (or
has blocked it) cannot be written to: nothing is written for them, and the admins are told
which leader it is, once, until that leader opens the bot again.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from bot.context import Services
from bot.services import outbox, people, problems, summary
from bot.services.charts import draw_ranking_chart
from bot.services.outbox import NewMessage
from bot.services.roles import Role
from bot.services.summary import Leader, Summary
from bot.services.windows import Window, WindowKind, period, week_key
from handlers.ranking_views import chart_text
from jobs.schedule import Cadence, Every, ScheduledJob
from jobs.summary_texts import compose_summary

log = logging.getLogger(__name__)
KIND = "summary"
UNREACHABLE = "leader-unreachable"


def weekly_window(today: date, services: Services) -> Window:
    """The week just ended (the ISO week that holds yesterday)."""
    return period(WindowKind.week, today - timedelta(days=1), services.settings.zone)


def daily_window(today: date, services: Services) -> Window:
    yesterday = today - timedelta(days=1)
    return Window.of(WindowKind.range, yesterday, yesterday, services.settings.zone)


async def chart_for(services: Services, figures: Summary, locale: str | None) -> str | None:
    """The ranking chart in the reader's language, into the media store; its address."""
    if not figures.standings.ranked:
        return None
    tr = services.i18n.translator(locale)
    text = chart_text(tr, figures.ranking_window, services.local(figures.as_of))
    png = await draw_ranking_chart(figures.standings, figures.changes, text)
    return services.media.put(png)


def unreachable_notices(
    services: Services,
    gone: list[tuple[int, str]],
    admins: dict[int, str | None],
    now: datetime,
) -> list[NewMessage]:
    """One message per admin and newly unreachable leader."""
    day = services.local(now).date().isoformat()
    messages = []
    for leader_id, name in gone:
        for admin_id, locale in sorted(admins.items()):
            tr = services.i18n.translator(locale)
            messages.append(
                NewMessage(
                    f"{UNREACHABLE}:{admin_id}:{leader_id}:{day}",
                    UNREACHABLE,
                    admin_id,
                    {"text": tr("summary.unreachable", name=name, id=leader_id)},
                )
            )
    return messages


async def write_summaries(services: Services, *, daily: bool = False) -> int:
    """This period's summary for every leader into the outbox; how many rows were new."""
    now = services.now()
    today = services.local(now).date()
    schedules = services.rules.schedules
    if daily and today.weekday() == schedules.leader_summary_day:
        return 0  # the weekly summary covers that morning
    window = daily_window(today, services) if daily else weekly_window(today, services)
    key_period = today.isoformat() if daily else week_key(today)
    async with services.db.begin() as session:
        leaders = await summary.leaders(session)
        reachable = [leader for leader in leaders if leader.reachable]
        figures = (
            await summary.leader_summary(
                session, window, now=now, zone=services.settings.zone, rules=services.rules
            )
            if reachable
            else None
        )
    messages: list[NewMessage] = []
    if figures is not None:
        charts: dict[str | None, str | None] = {}
        for leader in reachable:
            locale = services.i18n.resolve(leader.locale)
            if locale not in charts:
                charts[locale] = await chart_for(services, figures, locale)
            messages += summary_messages(services, leader, figures, charts[locale], key_period)
    unreachable = [leader.person_id for leader in leaders if not leader.reachable]
    async with services.db.begin() as session:
        # The mark and the admins' messages in one transaction: told once, and surely told.
        gone = await summary.note_unreachable(session, unreachable, now=now)
        if gone:
            admins = await problems.people_with_role(session, Role.admin)
            locales = await people.locales_of(session, admins)
            messages += unreachable_notices(services, gone, locales, now)
        written = await outbox.enqueue_many(session, messages, now=now)
    if written:
        services.wake_outbox()
    log.info(
        "leaders' summary %s: %d new outbox rows for %d leaders (%d unreachable)",
        key_period,
        len(written),
        len(reachable),
        len(unreachable),
    )
    return len(written)


def summary_messages(
    services: Services, leader: Leader, figures: Summary, chart: str | None, key_period: str
) -> list[NewMessage]:
    tr = services.i18n.translator(leader.locale)
    post = compose_summary(tr, figures, zone=services.settings.zone, rules=services.rules)
    key = f"{KIND}:{leader.telegram_id}:{key_period}"
    first: dict[str, Any] = {"text": post.caption}
    if chart is not None:
        first["photo_sha256"] = chart
    second: dict[str, Any] = {"text": post.body, "buttons": post.buttons}
    return [
        NewMessage(key, KIND, leader.telegram_id, first),
        NewMessage(f"{key}:2", KIND, leader.telegram_id, second),
    ]


async def on_private_chat_gone(services: Services, telegram_id: int) -> None:
    """Telegram will not deliver to this person any more (blocked, or never opened the bot):
    they are marked unreachable, and if they are a leader the admins are told, once."""
    now = services.now()
    async with services.db.begin() as session:
        leader = await summary.private_chat_gone(session, telegram_id)
        if leader is None:
            return
        gone = await summary.note_unreachable(session, [leader.person_id], now=now)
        if not gone:
            return
        admins = await problems.people_with_role(session, Role.admin)
        locales = await people.locales_of(session, admins)
        written = await outbox.enqueue_many(
            session, unreachable_notices(services, gone, locales, now), now=now
        )
    if written:
        services.wake_outbox()


async def write_weekly(services: Services) -> int:
    return await write_summaries(services)


async def write_daily(services: Services) -> int:
    return await write_summaries(services, daily=True)


WEEKLY = ScheduledJob(
    "leader-summary",
    lambda rules: Every(
        Cadence.weekly,
        rules.schedules.leader_summary_time,
        weekday=rules.schedules.leader_summary_day,
    ),
    write_weekly,
)
DAILY = ScheduledJob(
    "leader-summary-daily",
    lambda rules: (
        Every(Cadence.daily, rules.schedules.leader_summary_time)
        if rules.schedules.leader_summary_daily
        else None
    ),
    write_daily,
)
