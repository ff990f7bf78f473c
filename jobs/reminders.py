"""Every morning: each liaison's one message, each group's overdue list, the leaders' escalation.

The job only computes what is due and writes outbox rows keyed by kind, recipient and local
date, so running it twice (or in two processes, or again with /remind, or on a restart) writes
nothing new. The sender delivers the rows; see bot/sending/outbox_sender.py. When it runs (and
catches up after a restart) is jobs/schedule.py's.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from bot.context import Context, Services
from bot.services import outbox, reminders
from bot.services.outbox import NewMessage
from jobs.reminder_texts import escalation_text, group_text, liaison_text, open_buttons
from jobs.schedule import Cadence, Every, ScheduledJob

log = logging.getLogger(__name__)

JOB_NAME = "daily-reminders"


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


async def daily_reminders(context: Context) -> None:
    await write_reminders(context.services)


SCHEDULE = ScheduledJob(
    JOB_NAME,
    lambda rules: Every(Cadence.daily, rules.schedules.daily_reminder_time),
    write_reminders,
)
