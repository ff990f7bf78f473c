"""/parked: an admin sees the updates whose handlers failed every try, and puts them back in
line (one, or all) once the cause is fixed."""

from __future__ import annotations

from datetime import UTC, datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, filters

from bot.context import Context
from bot.services import inbox
from bot.services.roles import Role
from handlers.common import parse_id, reply

SHOWN = 10
ERROR_SHOWN = 160


async def _listing(context: Context) -> tuple[str, InlineKeyboardMarkup | None]:
    _ = context._
    async with context.services.db.begin() as session:
        total, items = await inbox.parked(session, limit=SHOWN)
    if not items:
        return _("parked.none"), None
    lines = [_("parked.title", n=total, shown=len(items))]
    for item in items:
        when = context.services.local(item.received_at).strftime("%Y-%m-%d %H:%M")
        first = item.error.splitlines()[0] if item.error else ""
        lines.append(
            _(
                "parked.line",
                id=item.update_id,
                when=when,
                kind=item.kind,
                chat=item.lane,
                attempts=item.attempts,
                error=first[:ERROR_SHOWN],
            )
        )
    buttons = [
        [
            InlineKeyboardButton(
                _("parked.replay_one", id=item.update_id), callback_data=f"pk:{item.update_id}"
            )
        ]
        for item in items
    ]
    buttons.append([InlineKeyboardButton(_("parked.replay_all", n=total), callback_data="pk:all")])
    return "\n\n".join(lines), InlineKeyboardMarkup(buttons)


async def parked_command(update: Update, context: Context) -> None:
    message = update.effective_message
    if context.actor is None or message is None:
        return
    if not context.actor.has(Role.admin):
        await reply(update, context, "parked.not_admin")
        return
    text, markup = await _listing(context)
    await message.reply_text(text, reply_markup=markup)


async def parked_button(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or context.actor is None or query.data is None:
        return
    if not context.actor.has(Role.admin):
        await query.answer(context._("parked.not_admin"), show_alert=True)
        return
    which = query.data.removeprefix("pk:")
    update_id = parse_id(which)
    ids = None if which == "all" else [update_id] if update_id is not None else []
    services = context.services
    async with services.db.begin() as session:
        n = await inbox.replay(session, ids, now=datetime.now(UTC))  # the inbox's real time
    if n:
        services.wake_inbox()
        await query.answer(context._("parked.replayed", n=n))
    else:
        await query.answer(context._("parked.nothing_to_replay"), show_alert=True)
    text, markup = await _listing(context)
    try:
        await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as exc:  # the list was already current (another tap, another admin)
        if "not modified" not in str(exc):
            raise


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("parked", parked_command, filters=filters.ChatType.PRIVATE))
    app.add_handler(CallbackQueryHandler(parked_button, pattern=r"^pk:"))
