"""/summary [window]: the leaders' summary now, for leaders and admins, in private. This week so
far by default (against the same stretch of last week); `/summary month`, `/summary 2026-10`,
`/summary 2026-10-01..2026-10-31` choose another window (the same words as /rank)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CommandHandler

from bot.context import Context
from bot.services import summary
from bot.services.charts import draw_ranking_chart
from bot.services.roles import Role
from bot.services.windows import WindowError, WindowKind, parse_window
from handlers.common import is_group, reply
from handlers.ranking import MAX_ARG_SHOWN
from handlers.ranking_views import chart_text
from jobs.summary_texts import compose_summary


async def summary_command(update: Update, context: Context) -> None:
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    if not actor.has(Role.leader, Role.admin):
        await reply(update, context, "summary.not_allowed")
        return
    if is_group(update):
        await reply(update, context, "summary.private_only")
        return
    services = context.services
    text = " ".join(context.args or [])
    now = services.now()
    window = parse_window(
        text,
        today=services.local(now).date(),
        zone=services.settings.zone,
        default=WindowKind.week,
    )
    if isinstance(window, WindowError):
        shown = text if len(text) <= MAX_ARG_SHOWN else text[:MAX_ARG_SHOWN] + "…"
        key = "summary.error.unknown" if window is WindowError.unknown else f"rank.error.{window}"
        await reply(update, context, key, text=shown)
        return
    async with services.db.begin() as session:
        figures = await summary.leader_summary(
            session, window, now=now, zone=services.settings.zone, rules=services.rules
        )
    tr = context._
    post = compose_summary(tr, figures, zone=services.settings.zone, rules=services.rules)
    if figures.standings.ranked:
        png = await draw_ranking_chart(
            figures.standings,
            figures.changes,
            chart_text(tr, figures.ranking_window, services.local(now)),
        )
        await message.reply_photo(png, caption=post.caption, filename="summary.png")
    else:
        await message.reply_text(post.caption)
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=data) for label, data in row]
            for row in post.buttons
        ]
    )
    await message.reply_text(post.body, reply_markup=keyboard if post.buttons else None)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("summary", summary_command))
