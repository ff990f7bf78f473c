"""Every morning: each liaison's one message, each group's overdue list, the leaders' escalation.

The job only computes what is due and writes outbox rows keyed by recipient and local date, so
running it twice (or in two processes, or again with /remind) writes nothing new.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from telegram.ext import Application

from bot.context import Context, Services
from bot.services import outbox, reminders
from bot.services.reminders import Due

log = logging.getLogger(__name__)
MAX_OPEN_BUTTONS = 8


def _date(services: Services, due: Due) -> str:
    return services.local(due.deadline).strftime("%m-%d %H:%M")


async def write_reminders(services: Services) -> int:
    """Today's reminders into the outbox; how many rows were new."""
    now = services.now()
    today = services.local(now).date().isoformat()
    after = services.rules.schedules.escalate_after_days
    async with services.db.begin() as session:
        digests = await reminders.liaison_digests(session, now)
        groups = await reminders.group_overdue(session, now)
        escalated = await reminders.escalations(session, now, after)
        leaders = await reminders.leaders(session) if escalated else []
        written = 0
        for digest in digests:
            tr = services.i18n.translator(digest.locale)
            lines = [tr("remind.title", date=today)]
            if digest.overdue:
                lines.append(tr("remind.overdue_head"))
                lines += [
                    tr(
                        "remind.overdue_line",
                        code=d.code,
                        days=int(d.overdue_days) + 1,
                        deadline=_date(services, d),
                    )
                    for d in digest.overdue
                ]
            if digest.due_soon:
                lines.append(tr("remind.due_head"))
                lines += [
                    tr("remind.due_line", code=d.code, deadline=_date(services, d))
                    for d in digest.due_soon
                ]
            codes = [d.code for d in digest.overdue + digest.due_soon][:MAX_OPEN_BUTTONS]
            buttons = [[[tr("remind.open", code=c), f"p:show:{c}"]] for c in codes]
            written += await outbox.enqueue(
                session,
                f"remind:{digest.telegram_id}:{today}",
                "remind",
                digest.telegram_id,
                {"text": "\n".join(lines), "buttons": buttons},
                now=now,
            )
        default = services.i18n.translator(services.settings.default_locale)
        for group in groups:
            lines = [default("remind.group_title", date=today)]
            for subject, (items, liaisons) in sorted(group.by_subject.items()):
                mentions = " ".join(
                    f'<a href="tg://user?id={tid}">{html.escape(name)}</a>'
                    for tid, name in liaisons
                )
                lines.append(
                    default(
                        "remind.group_line",
                        subject=html.escape(subject),
                        codes=default("list.separator").join(d.code for d in items),
                        days=int(max(d.overdue_days for d in items)) + 1,
                        mentions=mentions,
                    )
                )
            written += await outbox.enqueue(
                session,
                f"overdue-group:{group.chat_id}:{today}",
                "overdue-group",
                group.chat_id,
                {"text": "\n".join(lines), "parse_mode": "HTML"},
                now=now,
            )
        for telegram_id, locale in leaders:
            tr = services.i18n.translator(locale)
            lines = [tr("remind.escalate_title", days=after, date=today)]
            lines += [
                tr(
                    "remind.escalate_line",
                    code=d.code,
                    subject=d.subject_name,
                    days=int(d.overdue_days) + 1,
                )
                for d in escalated
            ]
            written += await outbox.enqueue(
                session,
                f"escalate:{telegram_id}:{today}",
                "escalate",
                telegram_id,
                {"text": "\n".join(lines)},
                now=now,
            )
    if written:
        services.wake_outbox()
    log.info("reminders for %s: %d new outbox rows", today, written)
    return written


async def daily_reminders(context: Context) -> None:
    await write_reminders(context.services)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    services: Services = app.bot_data["services"]
    if app.job_queue is not None:
        at = services.rules.schedules.daily_reminder_time.replace(tzinfo=services.settings.zone)
        app.job_queue.run_daily(daily_reminders, at, name="daily-reminders")
