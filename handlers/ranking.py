"""/rank [window]: the ranking now (`/rank`, `/rank month`, `/rank 2026-Q3`,
`/rank 2026-10-01..2026-10-31`), as the chart with the table under it. In a group bound to one
subject, and for a liaison or inspector of one subject, that subject's standing is said first."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.context import Context
from bot.services import chats, snapshots, tallies
from bot.services.charts import draw_ranking_chart
from bot.services.ranking import rank_changes, rank_subjects
from bot.services.roles import AreaKind, Role
from bot.services.windows import Window, WindowError, WindowKind, parse_window
from handlers.common import is_group, reply
from handlers.ranking_views import chart_text, compose_ranking

MAX_ARG_SHOWN = 60


async def window_from_args(update: Update, context: Context) -> Window | None:
    """The window the person asked for, or None after telling them what is wrong with it."""
    text = " ".join(context.args or [])
    services = context.services
    window = parse_window(
        text,
        today=services.local(services.now()).date(),
        zone=services.settings.zone,
        default=WindowKind(services.rules.ranking.window),
    )
    if isinstance(window, WindowError):
        shown = text if len(text) <= MAX_ARG_SHOWN else text[:MAX_ARG_SHOWN] + "…"
        await reply(update, context, f"rank.error.{window.value}", text=shown)
        return None
    return window


def _own_subject(context: Context) -> int | None:
    """A liaison's or inspector's subject, when they hold such a role for exactly one."""
    actor = context.actor
    if actor is None:
        return None
    subjects = {*actor.area_ids(Role.liaison), *actor.area_ids(Role.inspector)}
    return subjects.pop() if len(subjects) == 1 else None


async def rank_command(update: Update, context: Context) -> None:
    message = update.effective_message
    chat = update.effective_chat
    if context.actor is None or message is None or chat is None:
        return
    services = context.services
    focus: int | None = None
    if is_group(update):
        async with services.db.begin() as session:
            binding = await chats.binding_of(session, chat.id)
        if binding is None:
            await reply(update, context, "rank.unbound_group")
            return
        if binding.area_kind is AreaKind.subject:
            focus = binding.area_id
    elif not context.actor.roles:
        await reply(update, context, "rank.not_member")
        return
    else:
        focus = _own_subject(context)
    window = await window_from_args(update, context)
    if window is None:
        return
    now = services.now()
    rules = services.rules.ranking
    async with services.db.begin() as session:
        counts = await tallies.window_counts(session, window, now, services.settings.zone)
        posted = await snapshots.latest_posted(session, services.settings.zone)
    standings = rank_subjects(counts.subjects, rules)
    # Moves are shown against the last weekly post, when it ranked the same window.
    same = posted is not None and (posted.window.kind, posted.window.first) == (
        window.kind,
        window.first,
    )
    changes = rank_changes(standings, snapshots.ranks_of(posted) if same else None)
    tr = context._
    as_of = services.local(now)
    post = compose_ranking(tr, standings, changes, window, as_of, focus=focus)
    if standings.ranked:
        png = await draw_ranking_chart(
            standings,
            changes,
            chart_text(tr, window, as_of),
            highlight=focus,
        )
        await message.reply_photo(png, caption=post.caption, filename="ranking.png")
    else:
        await message.reply_text(post.caption)
    for text in post.texts:
        await message.reply_text(text)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("rank", rank_command))
