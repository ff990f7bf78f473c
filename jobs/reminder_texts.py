"""The reminders' texts: pure functions of the due problems, a translator and the day.

Each text fits one Telegram message (4096 characters): what does not fit is counted in a last
line that points to /issues, so that a liaison with very many problems still gets one message.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from bot.context import Services
from bot.i18n import Translator
from bot.rules import Rules
from bot.services.problem_machine import Status
from bot.services.reminders import Due, GroupOverdue, LiaisonDigest

TEXT_LIMIT = 4096  # Telegram's, counted in UTF-16 code units to be safe with emoji
MAX_OPEN_BUTTONS = 8
MAX_GROUP_CODES = 10  # per subject in the group's list; the rest are counted


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit(lines: list[tuple[str, bool]], more: Callable[[int], str], limit: int = TEXT_LIMIT) -> str:
    """The lines joined, cut to ``limit``: lines are kept in order while they fit, and the
    counted ones (flag True, the problems; headings are not counted) that did not fit are
    summed up by a last line, ``more(how many)``."""
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
        line = html.escape(line)
        if mentions:  # named and linked, so that each liaison is notified
            slot = "\x00"  # the catalogue's text is escaped, the links go in as they are
            label = html.escape(tr("remind.group_liaisons", mentions=slot))
            line += label.replace(slot, mentions)
        lines.append((line, True))
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


def open_buttons(tr: Translator, codes: list[str]) -> list[list[list[str]]]:
    """A button to open each of the first problems (the card comes privately)."""
    return [[[tr("remind.open", code=c), f"p:show:{c}"]] for c in codes[:MAX_OPEN_BUTTONS]]
