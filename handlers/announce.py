"""Announcements: /announce (admins, in private) is a conversation kept as a draft in the
database, so a restart resumes it: the group (or all bound groups) → the content (a text, or a
photo with a caption) → when (now, or a time) → a preview exactly as the groups will see it →
confirm. /cancel or the button at every step. /announcements lists the queued ones, each with a
button to cancel it, and the latest sent or cancelled under them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.context import Context
from bot.services import announcements, chats, drafts
from bot.services.announcements import AnnouncementView, CancelRefusal, TimeError
from bot.services.drafts import DraftView
from bot.services.outbox import is_quiet
from bot.services.people import Actor
from bot.services.roles import Role
from handlers.common import SENT, is_group, made_by_this_update, parse_id, reply, save_step, stamped
from jobs import announcements as release

DRAFT_KIND = "announce"
DRAFT_KINDS = (DRAFT_KIND,)
STEPS = ("target", "content", "when", "confirm")
PREVIEW_CHARS = 40
LISTED = 20


def _nav(context: Context, *, back: bool = True) -> list[InlineKeyboardButton]:
    row = [InlineKeyboardButton(context._("draft.cancel"), callback_data="an:x")]
    if back:
        row.insert(0, InlineKeyboardButton(context._("draft.back"), callback_data="an:b"))
    return row


def _stamp(context: Context, moment: datetime) -> str:
    return context.services.local(moment).strftime("%Y-%m-%d %H:%M")


async def _run_again(context: Context, chat_id: int, draft: DraftView) -> bool:
    """Whether this update already moved the draft (its first run failed telling the admin):
    then the step it moved to is asked once more, or the queued announcement told."""
    if draft.step == SENT:  # queued; telling the admin failed
        await _tell_queued(context, chat_id, draft.data)
        return True
    if made_by_this_update(draft.data):
        await _prompt(context, chat_id, draft.step, draft.data)
        return True
    return False


async def _group_names(context: Context) -> dict[int, str]:
    """Each bound group's title (or its area's name), by Telegram chat id."""
    async with context.services.db.begin() as session:
        groups = await chats.bound_groups(session)
        titles = await chats.titles(session, [g.telegram_chat_id for g in groups])
    return {g.telegram_chat_id: titles.get(g.telegram_chat_id) or g.area_name for g in groups}


def _target_text(context: Context, data: dict[str, Any], groups: int | None = None) -> str:
    if data.get("target") == "all":
        return context._("announce.target_all", n=groups if groups is not None else "?")
    return str(data.get("target_title", "-"))


def _when_text(context: Context, data: dict[str, Any]) -> str:
    if data.get("when") == "now":
        return context._("announce.when_now")
    moment = datetime.fromisoformat(str(data["when"]))
    text = _stamp(context, moment)
    schedules = context.services.rules.schedules
    local = context.services.local(moment).time()
    if is_quiet(local, schedules.quiet_start, schedules.quiet_end):
        text += context._("announce.quiet_note", end=schedules.quiet_end.strftime("%H:%M"))
    return text


async def _prompt(context: Context, chat_id: int, step: str, data: dict[str, Any]) -> None:
    _ = context._
    if step == "target":
        groups = await _group_names(context)
        rows = [
            [
                InlineKeyboardButton(
                    _("announce.target_all", n=len(groups)), callback_data="an:t:all"
                )
            ]
        ]
        rows += [
            [InlineKeyboardButton(name, callback_data=f"an:t:{chat}")]
            for chat, name in groups.items()
        ]
        rows.append(_nav(context, back=False))
        await context.bot.send_message(
            chat_id, _("announce.ask_target"), reply_markup=InlineKeyboardMarkup(rows)
        )
    elif step == "content":
        await context.bot.send_message(
            chat_id,
            _("announce.ask_content", target=_target_text(context, data, data.get("groups"))),
            reply_markup=InlineKeyboardMarkup([_nav(context)]),
        )
    elif step == "when":
        schedules = context.services.rules.schedules
        rows = [[InlineKeyboardButton(_("announce.now_button"), callback_data="an:w:now")]]
        rows.append(_nav(context))
        await context.bot.send_message(
            chat_id,
            _(
                "announce.ask_when",
                start=schedules.quiet_start.strftime("%H:%M"),
                end=schedules.quiet_end.strftime("%H:%M"),
            ),
            reply_markup=InlineKeyboardMarkup(rows),
        )
    else:  # confirm: the announcement exactly as the groups will get it, then the question
        text = str(data.get("text", ""))
        if data.get("photo"):
            await context.bot.send_photo(chat_id, str(data["photo"]), caption=text or None)
        else:
            await context.bot.send_message(chat_id, text)
        rows = [
            [InlineKeyboardButton(_("announce.confirm_button"), callback_data="an:ok")],
            _nav(context),
        ]
        await context.bot.send_message(
            chat_id,
            _(
                "announce.confirm",
                target=_target_text(context, data, data.get("groups")),
                when=_when_text(context, data),
            ),
            reply_markup=InlineKeyboardMarkup(rows),
        )


async def _refused(update: Update, context: Context, actor: Actor) -> bool:
    """Announcements are an admin's, in private; anyone else is told so (True)."""
    if not actor.has(Role.admin):
        await reply(update, context, "announce.not_admin")
        return True
    if is_group(update):
        await reply(update, context, "announce.private_only")
        return True
    return False


async def announce_command(update: Update, context: Context) -> None:
    actor = context.actor
    chat = update.effective_chat
    if actor is None or chat is None:
        return
    if await _refused(update, context, actor):
        return
    groups = await _group_names(context)
    if not groups:
        await reply(update, context, "announce.no_groups")
        return
    async with context.services.db.begin() as session:
        await drafts.start(
            session, actor.person_id, DRAFT_KIND, "target", {}, context.services.now()
        )
    await _prompt(context, chat.id, "target", {})


async def on_draft_message(
    update: Update, context: Context, draft: DraftView, message: Message
) -> None:
    """A private message while an announcement is being written: its content, or its time."""
    data = dict(draft.data)
    album = message.media_group_id
    if album is not None and album == data.get("album"):
        return  # the rest of an album whose first picture was taken: said once already
    if await _run_again(context, message.chat.id, draft):
        return
    if draft.step == "content":
        await _content(update, context, data, message)
    elif draft.step == "when" and message.text:
        moment = announcements.parse_send_time(
            message.text, now=context.services.now(), zone=context.services.settings.zone
        )
        if isinstance(moment, TimeError):
            shown = message.text.strip()[:40]
            await reply(update, context, f"announce.time.{moment.value}", text=shown)
            return
        data["when"] = moment.isoformat()
        await save_step(context, "confirm", data)
        await _prompt(context, message.chat.id, "confirm", data)
    else:
        await reply(update, context, "draft.use_buttons")


async def _content(
    update: Update, context: Context, data: dict[str, Any], message: Message
) -> None:
    if message.document is not None:
        await reply(update, context, "announce.not_a_picture")
        return
    if message.photo:
        text = (message.caption or "").strip()
        photo: str | None = message.photo[-1].file_id
    elif message.text:
        text, photo = message.text.strip(), None
    else:
        await reply(update, context, "announce.need_content")
        return
    if not text and photo is None:
        await reply(update, context, "announce.need_content")
        return
    limit = announcements.content_problem(text, photo=photo is not None)
    if limit is not None:
        key = "announce.caption_too_long" if photo else "announce.too_long"
        await reply(update, context, key, n=len(text), limit=limit)
        return
    data.update(text=text, photo=photo)
    if message.media_group_id is not None:
        data["album"] = message.media_group_id
        await reply(update, context, "announce.one_picture")
    await save_step(context, "when", data)
    await _prompt(context, message.chat.id, "when", data)


async def announce_button(update: Update, context: Context) -> None:
    query = update.callback_query
    actor = context.actor
    if query is None or query.data is None or actor is None or query.message is None:
        return
    verb, _sep, arg = query.data.removeprefix("an:").partition(":")
    if verb == "c":
        await _cancel_button(update, context, arg)
        return
    async with context.services.db.begin() as session:
        draft = await drafts.current(session, actor.person_id)
    if draft is None or draft.kind != DRAFT_KIND or not actor.has(Role.admin):
        await query.answer(context._("button.stale"), show_alert=True)
        return
    chat_id = query.message.chat.id
    data = dict(draft.data)
    if draft.step == SENT or made_by_this_update(data):
        await query.answer()
        await _run_again(context, chat_id, draft)
        return
    if verb == "x":
        async with context.services.db.begin() as session:
            await drafts.finish(session, actor.person_id)
        await query.answer()
        await context.bot.send_message(chat_id, context._("draft.cancelled"))
        return
    if verb == "b" and draft.step != "target":
        previous = STEPS[STEPS.index(draft.step) - 1]
        await save_step(context, previous, data)
        await query.answer()
        await _prompt(context, chat_id, previous, data)
        return
    expected = {"t": "target", "w": "when", "ok": "confirm"}
    if expected.get(verb) != draft.step:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    if verb == "t":
        groups = await _group_names(context)
        if arg == "all":
            data.update(target="all", groups=len(groups))
        elif (group := parse_id(arg)) is not None and group in groups:
            data.update(target=group, target_title=groups[group])
        else:  # a group unbound since the buttons were made
            await query.answer(context._("announce.group_gone"), show_alert=True)
            return
        await save_step(context, "content", data)
        await query.answer()
        await _prompt(context, chat_id, "content", data)
    elif verb == "w":
        data["when"] = "now"
        await save_step(context, "confirm", data)
        await query.answer()
        await _prompt(context, chat_id, "confirm", data)
    else:
        await query.answer()
        await _confirm(context, chat_id, draft.data)


async def _confirm(context: Context, chat_id: int, data: dict[str, Any]) -> None:
    """Queue it (and send it at once if "now"), unless the world changed meanwhile: a time that
    has passed, or a group no longer bound, sends the admin back to that step."""
    actor = context.actor
    assert actor is not None
    services = context.services
    now = services.now()
    target = data.get("target")
    if target != "all" and target not in await _group_names(context):
        await save_step(context, "target", data)
        await context.bot.send_message(chat_id, context._("announce.group_gone"))
        await _prompt(context, chat_id, "target", data)
        return
    when = data.get("when")
    send_at = now if when == "now" else datetime.fromisoformat(str(when))
    if send_at < now:
        await save_step(context, "when", data)
        await context.bot.send_message(
            chat_id, context._("announce.time.past", text=_stamp(context, send_at))
        )
        await _prompt(context, chat_id, "when", data)
        return
    async with services.db.begin() as session:
        item = await announcements.queue(
            session,
            created_by_id=actor.person_id,
            target_chat_id=None if target == "all" else int(str(target)),
            text=str(data.get("text", "")),
            photo_file_id=data.get("photo"),
            send_at=send_at,
            respects_quiet_hours=when != "now",
            now=now,
        )
        # The draft waits as "sent" until the admin is told: if that fails, the update runs
        # again and goes on (one announcement, not two).
        sent = stamped({**data, "id": item.id})
        await drafts.save(session, actor.person_id, SENT, sent, now)
    await _tell_queued(context, chat_id, sent)


async def _tell_queued(context: Context, chat_id: int, data: dict[str, Any]) -> None:
    """Sent at once ("now"), or queued for its time: the admin is told which."""
    actor = context.actor
    assert actor is not None
    services = context.services
    item_id = int(data["id"])
    if data.get("when") == "now":
        await release.release_due(services)  # this run's or an earlier run's: released once
        async with services.db.begin() as session:
            item = await announcements.get(session, item_id)
        groups = (item.recipients or 0) if item is not None else 0
        await context.bot.send_message(chat_id, context._("announce.sending", id=item_id, n=groups))
    else:
        await context.bot.send_message(
            chat_id,
            context._(
                "announce.queued",
                id=item_id,
                when=_when_text(context, data),
                target=_target_text(context, data, data.get("groups")),
            ),
        )
    async with services.db.begin() as session:
        await drafts.finish(session, actor.person_id)


# ---------------------------------------------------------------- the list and cancelling


def _preview(item: AnnouncementView) -> str:
    text = " ".join(item.text.split())
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


def _line(context: Context, item: AnnouncementView, names: dict[int, str]) -> str:
    _ = context._
    target = (
        _("announce.target_all_short")
        if item.target_chat_id is None
        else names.get(item.target_chat_id, str(item.target_chat_id))
    )
    return _(
        "announce.line",
        id=item.id,
        when=_stamp(context, item.send_at),
        target=target,
        kind=_("announce.kind_photo") if item.photo_file_id else _("announce.kind_text"),
        preview=_preview(item),
        who=item.created_by_name,
    )


def _history_line(context: Context, item: AnnouncementView) -> str:
    _ = context._
    if item.status == announcements.CANCELLED:
        return _(
            "announce.history.cancelled",
            id=item.id,
            who=item.cancelled_by_name or "-",
            when=_stamp(context, item.cancelled_at or item.created_at),
        )
    return _(
        f"announce.history.{item.status}",
        id=item.id,
        n=item.recipients or 0,
        when=_stamp(context, item.released_at or item.send_at),
    )


async def announcements_command(update: Update, context: Context) -> None:
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    if await _refused(update, context, actor):
        return
    async with context.services.db.begin() as session:
        waiting = await announcements.queued(session, limit=LISTED)
        done = await announcements.recent(session)
        names = await chats.titles(
            session, [a.target_chat_id for a in waiting + done if a.target_chat_id is not None]
        )
    _ = context._
    lines = [_("announce.list_title", n=len(waiting)) if waiting else _("announce.none_queued")]
    lines += [_line(context, a, names) for a in waiting]
    if done:
        lines += ["", _("announce.history_title")]
        lines += [_history_line(context, a) for a in done]
    buttons = [
        [InlineKeyboardButton(_("announce.cancel_button", id=a.id), callback_data=f"an:c:{a.id}")]
        for a in waiting
    ]
    await message.reply_text(
        "\n".join(lines), reply_markup=InlineKeyboardMarkup(buttons) if buttons else None
    )


async def _cancel_button(update: Update, context: Context, arg: str) -> None:
    query = update.callback_query
    actor = context.actor
    assert query is not None and actor is not None
    if not actor.has(Role.admin):
        await query.answer(context._("announce.not_admin"), show_alert=True)
        return
    announcement_id = parse_id(arg)
    if announcement_id is None:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    async with context.services.db.begin() as session:
        result = await announcements.cancel(
            session, announcement_id, by_person_id=actor.person_id, now=context.services.now()
        )
    if isinstance(result, CancelRefusal):
        await query.answer(
            context._(f"announce.cannot_cancel.{result.value}", id=arg), show_alert=True
        )
        return
    await query.answer(context._("announce.cancelled", id=result.id))
    if query.message is not None:
        await context.bot.send_message(
            query.message.chat.id, context._("announce.cancelled", id=result.id)
        )


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("announce", announce_command))
    app.add_handler(CommandHandler("announcements", announcements_command))
    app.add_handler(CallbackQueryHandler(announce_button, pattern=r"^an:"))
