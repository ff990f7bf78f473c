"""/lang: each person chooses Chinese or English for themselves."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.context import Context
from bot.i18n import LOCALES
from bot.services import people

# Each language's name in itself, so that anyone can find their own.
_ALIASES = {"zh": "zh_CN", "zh_cn": "zh_CN", "zh-cn": "zh_CN", "cn": "zh_CN", "en": "en"}


async def _choose(context: Context, locale: str) -> str:
    actor = context.actor
    assert actor is not None
    async with context.services.db.begin() as session:
        await people.set_locale(session, actor.person_id, locale)
    context.translator = context.services.i18n.translator(locale)
    return context._("lang.set")


async def lang_command(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or context.actor is None:
        return
    if context.args:
        locale = _ALIASES.get(context.args[0].strip().lower())
        if locale is None:
            await message.reply_text(context._("lang.unknown"))
            return
        await message.reply_text(await _choose(context, locale))
        return
    buttons = [
        InlineKeyboardButton(
            context.services.i18n.text(loc, "lang.name"), callback_data=f"lang:{loc}"
        )
        for loc in LOCALES
    ]
    await message.reply_text(context._("lang.choose"), reply_markup=InlineKeyboardMarkup([buttons]))


async def lang_button(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or query.data is None or context.actor is None:
        return
    locale = query.data.removeprefix("lang:")
    if locale not in LOCALES:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    text = await _choose(context, locale)
    # In a group anyone may press the chooser: only the presser's language changes, so the
    # message stays for the others and the presser is told privately by the answer.
    if query.message is not None and query.message.chat.type == "private":
        await query.answer()
        await query.edit_message_text(text)
    else:
        await query.answer(text)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("lang", lang_command))
    app.add_handler(CallbackQueryHandler(lang_button, pattern=r"^lang:"))
