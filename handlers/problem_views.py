"""How a problem looks in chat: the card, its history, its buttons, and notices to people."""

from __future__ import annotations

import logging
from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Message
from telegram.error import BadRequest, Forbidden

from bot.context import Context
from bot.i18n import Translator
from bot.limits import TelegramLimits, split_text
from bot.services.problem_machine import OPEN_STATUSES
from bot.services.problems import PhotoIn, ProblemCard, ProblemLine, ProblemView

log = logging.getLogger(__name__)
Markup = InlineKeyboardMarkup

DOWNLOAD_LIMIT = TelegramLimits().download_max_bytes


def category_name(context: Context, key: str, tr: Translator | None = None) -> str:
    category = context.services.rules.category(key)
    return category.name.get((tr or context._).locale) if category else key


def lead_department(context: Context, key: str, tr: Translator | None = None) -> str:
    """The department that leads on this category (from the rules file), or ""."""
    category = context.services.rules.category(key)
    return category.lead_department.get((tr or context._).locale) if category else ""


def when(context: Context, moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return context.services.local(moment).strftime("%Y-%m-%d %H:%M")


def day(context: Context, moment: datetime | None) -> str:
    return "-" if moment is None else context.services.local(moment).strftime("%Y-%m-%d")


def deadline_text(context: Context, problem: ProblemView, tr: Translator) -> str:
    if problem.deadline is None:
        return tr("card.no_deadline")
    now = context.services.now()
    shown = day(context, problem.deadline)
    if problem.status not in OPEN_STATUSES:
        return shown
    days = (problem.deadline - now).total_seconds() / 86400
    if days < 0:
        return tr("card.deadline_overdue", date=shown, days=int(-days) + 1)
    return tr("card.deadline_left", date=shown, days=int(days))


def card_text(
    context: Context,
    card: ProblemCard,
    tr: Translator | None = None,
    *,
    with_history: bool = False,
) -> str:
    """The card in ``tr``'s language (the actor's by default)."""
    _ = tr or context._
    p = card.problem
    lines = [
        _("card.title", code=p.code, status=_(f"status.{p.status.value}")),
        _("card.category", category=category_name(context, p.category, _)),
    ]
    department = lead_department(context, p.category, _)
    if department:
        lines.append(_("card.lead_department", department=department))
    if p.description:
        lines.append(_("card.description", text=p.description))
    place = [x for x in (card.village_name, p.address) if x]
    if p.latitude is not None and p.longitude is not None:
        place.append(f"{p.latitude:.5f}, {p.longitude:.5f}")
    if place:
        lines.append(_("card.place", place=" / ".join(place)))
    lines.append(_("card.reported", name=card.reporter_name, at=when(context, p.created_at)))
    if p.subject_name:
        lines.append(
            _("card.subject", subject=p.subject_name, deadline=deadline_text(context, p, _))
        )
    if p.extension_until is not None:
        lines.append(_("card.extension_asked", date=day(context, p.extension_until)))
    for dup in card.duplicates:
        lines.append(_(f"card.duplicate.{dup.why}", code=dup.code))
    if with_history:
        lines.append(_("card.history"))
        for line in card.history:  # every line: long texts are split into several messages
            text = _(f"history.{line.action}", who=line.actor_name or "-")
            if line.deadline is not None and line.action in ("assign", "request_extension"):
                text += _("history.until", date=day(context, line.deadline))
            if line.reason:
                text += _("history.reason", reason=line.reason)
            lines.append(f"{when(context, line.at)} {text}")
        lines.append(_("card.photos", before=len(card.before), after=len(card.after)))
    return "\n".join(lines)


def report_keyboard(
    context: Context, tr: Translator, code: str, *, ask_category: bool
) -> InlineKeyboardMarkup:
    """Under a new report: a category to pick (if not guessed), then the admins' buttons."""
    rows: list[list[InlineKeyboardButton]] = []
    if ask_category:
        buttons = [
            InlineKeyboardButton(c.name.get(tr.locale), callback_data=f"p:cat:{code}:{c.key}")
            for c in context.services.rules.categories
        ]
        rows += [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
    rows.append(
        [
            InlineKeyboardButton(tr("button.assign"), callback_data=f"p:asg:{code}"),
            InlineKeyboardButton(tr("button.reject"), callback_data=f"p:rej:{code}"),
        ]
    )
    return InlineKeyboardMarkup(rows)


def _pair(tr: Translator, code: str, first: tuple[str, str], second: tuple[str, str]) -> Markup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(tr(first[0]), callback_data=f"p:{first[1]}:{code}"),
                InlineKeyboardButton(tr(second[0]), callback_data=f"p:{second[1]}:{code}"),
            ]
        ]
    )


def liaison_keyboard(tr: Translator, code: str) -> Markup:
    return _pair(tr, code, ("button.submit", "sub"), ("button.extend", "ext"))


def check_keyboard(tr: Translator, code: str) -> Markup:
    return _pair(tr, code, ("button.pass", "ok"), ("button.fail", "no"))


def extension_keyboard(tr: Translator, code: str) -> Markup:
    return _pair(tr, code, ("button.approve", "exy"), ("button.refuse", "exn"))


def photo_of(message: Message) -> tuple[PhotoIn | None, str | None]:
    """The photo in ``message``, or the key of why it cannot be used."""
    if message.photo:
        size = message.photo[-1]
        photo = PhotoIn(size.file_id, size.file_unique_id, message.message_id, size.file_size)
    elif message.document is not None:
        doc = message.document
        if not (doc.mime_type or "").startswith("image/"):
            return None, "report.not_image"
        photo = PhotoIn(doc.file_id, doc.file_unique_id, message.message_id, doc.file_size)
    else:
        return None, None
    if (photo.size or 0) > DOWNLOAD_LIMIT:
        return None, "report.too_big"
    return photo, None


def list_line(context: Context, line: ProblemLine) -> str:
    flag = context._("list.overdue") if line.overdue else ""
    return context._(
        "list.line",
        code=line.code,
        status=context._(f"status.{line.status.value}"),
        category=category_name(context, line.category),
        subject=line.subject_name or "-",
        deadline=day(context, line.deadline),
        flag=flag,
    )


async def notify(
    context: Context,
    telegram_id: int,
    text: str,
    markup: Markup | None = None,
    photos: list[str] | None = None,
) -> bool:
    """Tell one person privately; a person who never opened the bot, or blocked it, is logged
    and skipped so that one unreachable person does not stop the others being told.

    A failure that may pass (the network, 429s still coming after the rate limiter's retries)
    is raised: the update then runs again from the inbox (its state changes find themselves
    made, see ``problems.transition``) and everyone is told then; those told in the first run
    may be told twice, which beats nobody being told."""
    try:
        if photos and len(photos) > 1:
            await context.bot.send_media_group(
                telegram_id, [InputMediaPhoto(f) for f in photos[:10]]
            )
        elif photos:
            await context.bot.send_photo(telegram_id, photos[0])
        *first, last = split_text(text) or [text]  # the buttons go under the last part
        for piece in first:
            await context.bot.send_message(telegram_id, piece)
        await context.bot.send_message(telegram_id, last, reply_markup=markup)
    except (BadRequest, Forbidden) as exc:  # never opened the bot, blocked it, chat gone
        log.info("could not notify %s: %s", telegram_id, exc)
        return False
    return True
