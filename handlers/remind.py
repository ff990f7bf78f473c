"""/remind: an admin writes today's reminders now (the morning job's work, not repeated)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.context import Context
from bot.services.outbox import is_quiet
from bot.services.roles import Role
from handlers.common import reply
from jobs.reminders import write_reminders


async def remind_command(update: Update, context: Context) -> None:
    if context.actor is None:
        return
    if not context.actor.has(Role.admin):
        await reply(update, context, "remind.not_admin")
        return
    services = context.services
    written = await write_reminders(services)
    if not written.total:
        await reply(update, context, "remind.nothing_new")
        return
    schedules = services.rules.schedules
    quiet = is_quiet(
        services.local(services.now()).time(), schedules.quiet_start, schedules.quiet_end
    )
    counts = {
        "n": written.total,
        "liaisons": written.liaisons,
        "groups": written.groups,
        "leaders": written.leaders,
    }
    if quiet:
        end = schedules.quiet_end.strftime("%H:%M")
        await reply(update, context, "remind.queued_quiet", end=end, **counts)
    else:
        await reply(update, context, "remind.queued", **counts)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("remind", remind_command))
