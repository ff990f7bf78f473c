"""/points (a volunteer's own statement), and for admins /adjust (a correction with a reason,
a new ledger entry), /ledger (anyone's entries) and /leaderboard (the month's volunteers per
village, posted to a bound group or shown privately; cadres see their own villages)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.context import Context
from bot.services import people, points, points_reports
from bot.services.chats import binding_of
from bot.services.points import CorrectionRefused
from bot.services.points_rules import month_window, months_back, parse_correction, parse_month
from bot.services.roles import Role
from handlers.common import is_group, is_private, reply
from handlers.points_views import board_lines, chunks, entry_line, month_label, signed
from handlers.problem_views import notify

LEDGER_LINES = 30


async def points_command(update: Update, context: Context) -> None:
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    if not is_private(update):
        await reply(update, context, "common.private_only", command="/points")
        return
    services, _ = context.services, context._
    async with services.db.begin() as session:
        mine = await points_reports.statement(
            session, actor.person_id, now=services.now(), zone=services.settings.zone
        )
    lines = [
        _("points.title"),
        _("points.balance", balance=mine.balance),
        _("points.month", points=mine.earned_month),
    ]
    if mine.rank is not None and mine.village_name is not None:
        lines.append(
            _("points.rank", village=mine.village_name, rank=mine.rank, of=mine.volunteers)
        )
    elif not actor.has(Role.volunteer):
        lines.append(_("points.not_volunteer"))
    lines.append(_("points.recent"))
    lines += [entry_line(services, _, e) for e in mine.entries] or [_("points.no_entries")]
    await message.reply_text("\n".join(lines))


async def _one_person(update: Update, context: Context, text: str) -> people.PersonRef | None:
    """The person an admin named, or None after telling them why not."""
    async with context.services.db.begin() as session:
        found = await people.find_people(session, text)
    if not found:
        await reply(update, context, "adjust.unknown_person", who=text[:40])
        return None
    if len(found) > 1:
        names = context._("list.separator").join(f"{p.full_name} ({p.telegram_id})" for p in found)
        await reply(update, context, "adjust.ambiguous", who=text[:40], people=names)
        return None
    return found[0]


async def adjust_command(update: Update, context: Context) -> None:
    """``/adjust <@user | telegram id | name> <+N | -N> <reason>``."""
    actor = context.actor
    if actor is None:
        return
    if not actor.has(Role.admin):
        await reply(update, context, "adjust.not_admin")
        return
    if not is_private(update):
        await reply(update, context, "common.private_only", command="/adjust")
        return
    args = context.args or []
    amount = parse_correction(args[1]) if len(args) >= 2 else None
    if len(args) < 3 or amount is None:
        await reply(update, context, "adjust.usage")
        return
    target = await _one_person(update, context, args[0])
    if target is None:
        return
    reason = " ".join(args[2:])
    services = context.services
    async with services.db.begin() as session:
        result = await points.correct(
            session,
            target.id,
            amount,
            admin_id=actor.person_id,
            reason=reason,
            now=services.now(),
        )
    if isinstance(result, CorrectionRefused):
        await reply(
            update,
            context,
            f"adjust.refused.{result.refusal.value}",
            name=target.full_name,
            balance=result.balance,
        )
        return
    await reply(
        update,
        context,
        "adjust.done",
        name=target.full_name,
        amount=signed(amount),
        reason=result.entry.note or "",
        balance=result.balance,
    )
    tr = services.i18n.translator(target.locale)
    await notify(
        context,
        target.telegram_id,
        tr(
            "adjust.notice",
            admin=actor.full_name,
            amount=signed(amount),
            reason=result.entry.note or "",
            balance=result.balance,
        ),
    )


async def ledger_command(update: Update, context: Context) -> None:
    """``/ledger <@user | telegram id | name>``: an admin reads anyone's entries."""
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    if not actor.has(Role.admin):
        await reply(update, context, "ledger.not_admin")
        return
    if not is_private(update):
        await reply(update, context, "common.private_only", command="/ledger")
        return
    if not context.args:
        await reply(update, context, "ledger.usage")
        return
    target = await _one_person(update, context, " ".join(context.args))
    if target is None:
        return
    services, _ = context.services, context._
    async with services.db.begin() as session:
        balance = await points.balance_of(session, target.id)
        entries = await points.entries_of(session, target.id, limit=LEDGER_LINES)
    header = _("ledger.title", name=target.full_name, balance=balance, n=len(entries))
    lines = [entry_line(services, _, e) for e in entries] or [_("points.no_entries")]
    for text in chunks(header, lines):
        await message.reply_text(text)


async def leaderboard_command(update: Update, context: Context) -> None:
    """``/leaderboard [YYYY-MM]``: this month by default."""
    actor = context.actor
    message = update.effective_message
    chat = update.effective_chat
    if actor is None or message is None or chat is None:
        return
    services, _ = context.services, context._
    args = context.args or []
    month = parse_month(args[0]) if args else None
    if len(args) > 1 or (args and month is None):
        await reply(update, context, "leaderboard.usage")
        return
    now = services.now()
    back = months_back(now, services.settings.zone, *month) if month else 0
    if back < 0:
        await reply(update, context, "leaderboard.usage")
        return
    async with services.db.begin() as session:
        if is_group(update):
            if not actor.has(Role.admin):
                await reply(update, context, "leaderboard.not_allowed")
                return
            bound = await binding_of(session, chat.id)
            if bound is None:
                await reply(update, context, "leaderboard.not_bound")
                return
            villages: list[int] | None = await points_reports.villages_under(session, bound.area_id)
        elif actor.has(Role.admin):
            villages = None
        elif actor.has(Role.cadre):
            villages = actor.area_ids(Role.cadre)
        else:
            await reply(update, context, "leaderboard.not_allowed")
            return
        start, end = month_window(now, services.settings.zone, back)
        boards = await points_reports.leaderboard(
            session, start, end, villages, top=services.rules.points.leaderboard_top
        )
    if is_group(update):  # posted for the whole group: in the deployment's language
        _ = services.i18n.translator(services.settings.default_locale)
    header = _("leaderboard.title", month=month_label(services, _, start))
    for text in chunks(header, board_lines(_, boards) or [_("leaderboard.no_villages")]):
        await message.reply_text(text)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("points", points_command))
    app.add_handler(CommandHandler("adjust", adjust_command))
    app.add_handler(CommandHandler("ledger", ledger_command))
    app.add_handler(CommandHandler("leaderboard", leaderboard_command))
