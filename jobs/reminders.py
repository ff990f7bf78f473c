"""Every morning: each liaison's one message, each group's overdue list, the leaders' escalation.

The job only computes what is due and writes outbox rows keyed by kind, recipient and local
date, so running it twice (or in two processes, or again with /remind, or on a restart) writes
nothing new. The sender delivers the rows; see bot/sending/outbox_sender.py.
"""

from __future__ import annotations

import html
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

from telegram.ext import Application

from bot.context import Context, Services
from bot.i18n import Translator
from bot.rules import Rules, Schedules
from bot.services import outbox, reminders
from bot.services.outbox import NewMessage
from bot.services.problem_machine import Status
from bot.services.reminders import Due, GroupOverdue, LiaisonDigest

log = logging.getLogger(__name__)

JOB_NAME = "daily-reminders"
TEXT_LIMIT = 4096  # Telegram's, counted in UTF-16 code units to be safe with emoji
MAX_OPEN_BUTTONS = 8
MAX_GROUP_CODES = 10  # per subject in the group's list; the rest are counted
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


# -- texts (pure) ---------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit(lines: list[tuple[str, bool]], more: Callable[[int], str], limit: int = TEXT_LIMIT) -> str:
    """The lines joined, cut to ``limit``: lines are kept in order while they fit, and the
    counted ones (flag True) that did not fit are summed up by ``more``. Uncounted lines
    (headings) at the start are always kept."""
    full = "\n".join(text for text, _ in lines)
    if utf16_len(full) <= limit:
        return full
    total = sum(counted for _, counted in lines)
    room = limit - utf16_len(more(total)) - 1  # ``more`` never grows as the count shrinks
    kept: list[str] = []
    size = -1
    shown = 0
    for text, counted in lines:
        if size + 1 + utf16_len(text) > room:
            break
        kept.append(text)
        size += 1 + utf16_len(text)
        shown += counted
    return "\n".join([*kept, more(total - shown)])


def _category(rules: Rules, tr: Translator, key: str) -> str:
    category = rules.category(key)
    return category.name.get(tr.locale) if category is not None else key


def _date(services: Services, due: Due) -> str:
    return services.local(due.deadline).strftime("%Y-%m-%d")


def liaison_text(services: Services, tr: Translator, digest: LiaisonDigest, today: str) -> str:
    rules = services.rules
    lines: list[tuple[str, bool]] = [(tr("remind.title", date=today), False)]
    if digest.overdue:
        lines.append((tr("remind.overdue_head", n=len(digest.overdue)), False))
        lines += [
            (
                tr(
                    "remind.overdue_line",
                    code=d.code,
                    category=_category(rules, tr, d.category),
                    days=d.overdue_days,
                    deadline=_date(services, d),
                ),
                True,
            )
            for d in digest.overdue
        ]
    if digest.due_soon:
        hours = rules.schedules.remind_due_within_hours
        lines.append((tr("remind.due_head", n=len(digest.due_soon), hours=hours), False))
        lines += [
            (
                tr(
                    "remind.due_line",
                    code=d.code,
                    category=_category(rules, tr, d.category),
                    deadline=_date(services, d),
                ),
                True,
            )
            for d in digest.due_soon
        ]
    return fit(lines, lambda n: tr("remind.more", n=n))


def _awaiting(tr: Translator, due: Due) -> str:
    return tr("remind.awaiting_check") if due.status is Status.pending_check else ""


def group_text(tr: Translator, group: GroupOverdue, today: str) -> str:
    """HTML: the liaisons are mentioned by link, so every name and code is escaped."""
    lines: list[tuple[str, bool]] = [(html.escape(tr("remind.group_title", date=today)), False)]
    for subject in group.subjects:
        shown = subject.problems[:MAX_GROUP_CODES]
        codes = tr("list.separator").join(d.code + _awaiting(tr, d) for d in shown)
        if len(subject.problems) > len(shown):
            codes += tr("remind.group_more_codes", n=len(subject.problems) - len(shown))
        mentions = " ".join(
            f'<a href="tg://user?id={p.telegram_id}">{html.escape(p.name)}</a>'
            for p in subject.liaisons
        )
        line = tr(
            "remind.group_line",
            subject=subject.subject_name,
            n=len(subject.problems),
            days=subject.problems[0].overdue_days,
            codes=codes,
        )
        lines.append((html.escape(line) + (" " + mentions if mentions else ""), True))
    return fit(lines, lambda n: html.escape(tr("remind.group_more", n=n)))


def escalation_text(
    services: Services, tr: Translator, items: list[Due], after_days: int, today: str
) -> str:
    lines: list[tuple[str, bool]] = [
        (tr("remind.escalate_title", days=after_days, date=today), False)
    ]
    lines += [
        (
            tr(
                "remind.escalate_line",
                code=d.code,
                subject=d.subject_name,
                category=_category(services.rules, tr, d.category),
                days=d.overdue_days,
            )
            + _awaiting(tr, d),
            True,
        )
        for d in items
    ]
    return fit(lines, lambda n: tr("remind.more", n=n))


def _open_buttons(tr: Translator, codes: list[str]) -> list[list[list[str]]]:
    """A button to open each of the first problems (the card comes privately)."""
    return [[[tr("remind.open", code=c), f"p:show:{c}"]] for c in codes[:MAX_OPEN_BUTTONS]]


# -- the job ------------------------------------------------------------------------------------


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
            buttons = _open_buttons(tr, [d.code for d in digest.overdue + digest.due_soon])
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
            payload = {"text": text, "buttons": _open_buttons(tr, [d.code for d in escalated])}
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
