"""Last in line: whatever no feature handled gets a clear answer and changes nothing."""

from __future__ import annotations

from telegram import MessageEntity, Update
from telegram.ext import Application, CallbackQueryHandler, MessageHandler, filters

from bot.context import Context
from handlers.common import is_private, reply


def _addressed_to_us(update: Update, context: Context) -> bool:
    message = update.effective_message
    if message is None or not message.text:
        return False
    for entity, text in message.parse_entities([MessageEntity.BOT_COMMAND]).items():
        if entity.offset == 0 and "@" in text:
            return text.split("@", 1)[1].lower() == (context.bot.username or "").lower()
    return False


async def unknown_command(update: Update, context: Context) -> None:
    # In groups other bots' commands are none of our business unless addressed to us.
    if is_private(update) or _addressed_to_us(update, context):
        await reply(update, context, "fallback.unknown_command")


async def not_understood(update: Update, context: Context) -> None:
    await reply(update, context, "fallback.not_understood")


async def stale_button(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is not None:
        await query.answer(context._("button.stale"), show_alert=True)


def register(app: Application) -> None:  # type: ignore[type-arg]
    """Register after every feature module: in one group the first matching handler wins."""
    app.add_handler(MessageHandler(filters.COMMAND, unknown_command))
    app.add_handler(
        MessageHandler(filters.ChatType.PRIVATE & ~filters.StatusUpdate.ALL, not_understood)
    )
    app.add_handler(CallbackQueryHandler(stale_button))
