"""One error handler: log with context, tell the person in their language, never die.

An update from the inbox whose handlers fail runs again a few times before it is parked; the
person is told once, when the last try failed, not at every try."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application

from bot.context import Context
from bot.receiving.processor import current_attempt

log = logging.getLogger("greengrid.errors")


async def on_error(update: object, context: Context) -> None:
    where = "no update"
    if isinstance(update, Update):
        chat = update.effective_chat
        user = update.effective_user
        where = (
            f"update {update.update_id} chat {chat.id if chat else '-'} "
            f"user {user.id if user else '-'}"
        )
    attempt = current_attempt()
    if attempt is not None:
        where += f", try {attempt.number}"
    log.error("handler failed (%s)", where, exc_info=context.error)
    if not isinstance(update, Update) or (attempt is not None and not attempt.final):
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(context._("error.generic"), show_alert=True)
        elif update.effective_message is not None:
            await update.effective_message.reply_text(context._("error.generic"))
    except TelegramError as exc:  # telling them failed too; the log has the original
        log.warning("could not report the error to the user: %s", exc)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_error_handler(on_error)
