"""Every morning: each liaison's one message, each group's overdue list, the leaders' escalation.

The job only computes what is due and writes outbox rows keyed by kind, recipient and local
date, so running it twice (or in two processes, or again with /remind, or on a restart) writes
nothing new. The sender delivers the rows; see bot/sending/outbox_sender.py.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

from telegram.ext import Application

from bot.context import Context, Services
from bot.rules import Schedules
from bot.services import outbox, reminders
from bot.services.outbox import NewMessage
from jobs.reminder_texts import escalation_text, group_text, liaison_text, open_buttons

log = logging.getLogger(__name__)

JOB_NAME = "daily-reminders"
# A morning job that could not run on time (the machine was busy or asleep) still runs.
MISFIRE_GRACE_S = 3600


@dataclass(frozen=True)
class Written:
    """New outbox rows by kind."""

    liaisons: int = 0
    groups: int = 0
    leaders: int = 0

    @property
    def total(self) -> int:
        return self.liaisons + self.groups + self.leaders


async def write_reminders(services: Services) -> Written:
    """Today's reminders into the outbox; how many rows were new (none if all were written)."""
    now = services.now()
    zone = services.settings.zone
    today = services.local(now).date().isoformat()
    schedules = services.rules.schedules
    within = timedelta(hours=schedules.remind_due_within_hours)
    after = schedules.escalate_after_days
    messages: list[NewMessage] = []
    async with services.db.begin() as session:
        digests = await reminders.liaison_digests(session, now, zone, within)
        overdue_groups = await reminders.group_overdue(session, now, zone)
        escalated = await reminders.escalations(session, now, zone, after)
        leader_list = await reminders.leaders(session) if escalated else []
        for digest in digests:
            tr = services.i18n.translator(digest.locale)
            buttons = open_buttons(tr, [d.code for d in digest.overdue + digest.due_soon])
            text = liaison_text(services, tr, digest, today)
            messages.append(
                NewMessage(
                    f"remind:{digest.telegram_id}:{today}",
                    "remind",
                    digest.telegram_id,
                    {"text": text, "buttons": buttons},
                )
            )
        # A group has no one language: the deployment's.
        default = services.i18n.translator(services.settings.default_locale)
        for group in overdue_groups:
            text = group_text(default, group, today)
            messages.append(
                NewMessage(
                    f"overdue-group:{group.chat_id}:{today}",
                    "overdue-group",
                    group.chat_id,
                    {"text": text, "parse_mode": "HTML"},
                )
            )
        for telegram_id, locale in leader_list:
            tr = services.i18n.translator(locale)
            text = escalation_text(services, tr, escalated, after, today)
            payload = {"text": text, "buttons": open_buttons(tr, [d.code for d in escalated])}
            messages.append(
                NewMessage(f"escalate:{telegram_id}:{today}", "escalate", telegram_id, payload)
            )
        new = await outbox.enqueue_many(session, messages, now=now)
    kinds = Counter(m.kind for m in new)
    written = Written(kinds["remind"], kinds["overdue-group"], kinds["escalate"])
    if written.total:
        services.wake_outbox()
    log.info("reminders for %s: %s new outbox rows", today, written)
    return written


def should_catch_up(local: time, schedules: Schedules) -> bool:
    """Whether a process starting at local time ``local`` should write today's reminders now:
    the morning time has passed and the evening's quiet hours have not begun."""
    if local < schedules.daily_reminder_time:
        return False
    quiet_start = schedules.quiet_start
    if schedules.daily_reminder_time < quiet_start and schedules.quiet_start != schedules.quiet_end:
        return local < quiet_start
    return True


async def catch_up(services: Services) -> None:
    """On start: a bot that was down (or restarted) at the morning's time writes the day's
    reminders late rather than not at all. The keys make this harmless if they were written."""
    local = services.local(services.now()).time()
    if should_catch_up(local, services.rules.schedules):
        await write_reminders(services)


async def daily_reminders(context: Context) -> None:
    await write_reminders(context.services)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    services: Services = app.bot_data["services"]
    if app.job_queue is None:
        return
    at = services.rules.schedules.daily_reminder_time.replace(tzinfo=services.settings.zone)
    app.job_queue.run_daily(
        daily_reminders,
        at,
        name=JOB_NAME,
        job_kwargs={"misfire_grace_time": MISFIRE_GRACE_S, "coalesce": True},
    )
