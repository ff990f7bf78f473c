"""/remind: an admin writes today's reminders now (the morning job's work, not repeated)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.context import Context
from bot.services.roles import Role
from handlers.common import reply
from jobs.reminders import write_reminders


async def remind_command(update: Update, context: Context) -> None:
    if context.actor is None:
        return
    if not context.actor.has(Role.admin):
        await reply(update, context, "remind.not_admin")
        return
    written = await write_reminders(context.services)
    if written:
        await reply(update, context, "remind.queued", n=written)
    else:
        await reply(update, context, "remind.nothing_new")


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("remind", remind_command))
