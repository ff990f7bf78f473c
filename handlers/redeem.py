"""Redemption at designated shops (积分超市): /redeem gives the volunteer a one-time code and its
QR image; the shop's account sends ``/checkout CODE AMOUNT`` and both get a receipt at once;
``/shop today`` and ``/shop month`` list the shop's own redemptions for reconciliation.
Everything here happens in private chats: a code posted in a group is a code given away."""

from __future__ import annotations

from datetime import datetime, timedelta

from telegram import InputFile, Update
from telegram.ext import Application, CommandHandler

from bot.context import Context
from bot.qr import qr_png
from bot.services import redemptions
from bot.services.points_rules import (
    CheckoutInput,
    day_start,
    local_day,
    month_window,
    parse_checkout,
    receipt_no,
)
from bot.services.redemptions import CheckoutRefusal, CheckoutRefused, IssueRefused
from bot.services.roles import Role
from handlers.common import is_private, reply, this_update
from handlers.points_views import policy_of, stamp
from handlers.problem_views import notify


def _clock(context: Context, moment: datetime) -> str:
    return context.services.local(moment).strftime("%H:%M")


async def redeem_command(update: Update, context: Context) -> None:
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    if not is_private(update):
        await reply(update, context, "common.private_only", command="/redeem")
        return
    services = context.services
    async with services.db.begin() as session:
        issued = await redemptions.issue_code(
            session, policy_of(services), actor.person_id, now=services.now()
        )
    if isinstance(issued, IssueRefused):
        until = _clock(context, issued.until) if issued.until else ""
        await reply(
            update,
            context,
            f"redeem.refused.{issued.refusal.value}",
            n=services.rules.points.max_live_codes,
            until=until,
        )
        return
    caption = context._(
        "redeem.code",
        code=issued.code,
        until=_clock(context, issued.expires_at),
        minutes=services.rules.points.code_valid_minutes,
        balance=issued.balance,
    )
    await message.reply_photo(InputFile(qr_png(issued.code), filename="code.png"), caption=caption)


def _shop_area(context: Context) -> int | None:
    actor = context.actor
    assert actor is not None
    areas = actor.area_ids(Role.shop)
    return areas[0] if areas else None


async def checkout_command(update: Update, context: Context) -> None:
    """``/checkout CODE AMOUNT`` from a shop's account."""
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    if not actor.has(Role.shop):
        await reply(update, context, "checkout.not_shop")
        return
    if not is_private(update):
        await reply(update, context, "common.private_only", command="/checkout")
        return
    parsed = parse_checkout(context.args or [])
    if isinstance(parsed, CheckoutInput):
        await reply(update, context, f"checkout.input.{parsed.value}")
        return
    code, amount = parsed
    services = context.services
    async with services.db.begin() as session:
        result = await redemptions.checkout(
            session,
            policy_of(services),
            actor.person_id,
            _shop_area(context),
            code,
            amount,
            now=services.now(),
            update_id=this_update(),  # run again, it finds its checkout and tells them
        )
    if isinstance(result, CheckoutRefused):
        values: dict[str, object] = {"code": code, "amount": amount}
        if result.refusal is CheckoutRefusal.locked and result.until is not None:
            values["until"] = services.local(result.until).strftime("%m-%d %H:%M")
        if result.refusal is CheckoutRefusal.used and result.used_at is not None:
            values["at"] = stamp(services, result.used_at)
        if result.balance is not None:
            values["balance"] = result.balance
        await reply(update, context, f"checkout.refused.{result.refusal.value}", **values)
        return
    values = {
        "receipt": receipt_no(result.redemption_id),
        "amount": result.amount,
        "when": stamp(services, result.at),
        "name": result.volunteer_name,
        "shop": result.shop_name,
        "area": result.shop_area_name or "-",
        "balance": result.balance,
    }
    await reply(update, context, "checkout.receipt_shop", **values)
    tr = services.i18n.translator(result.volunteer_locale)
    await notify(context, result.volunteer_telegram_id, tr("checkout.receipt_volunteer", **values))


async def shop_command(update: Update, context: Context) -> None:
    """``/shop [today|month]``: the shop's own redemptions."""
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    if not actor.has(Role.shop):
        await reply(update, context, "checkout.not_shop")
        return
    if not is_private(update):
        await reply(update, context, "common.private_only", command="/shop")
        return
    args = [a.lower() for a in context.args or []]
    period = args[0] if args else "today"
    if len(args) > 1 or period not in (
        "today",
        "month",
        context._("shop.word_today"),
        context._("shop.word_month"),
    ):
        await reply(update, context, "shop.usage")
        return
    services, _ = context.services, context._
    now, zone = services.now(), services.settings.zone
    if period in ("month", _("shop.word_month")):
        start, end = month_window(now, zone)
        label = _("shop.label_month", month=services.local(start).strftime("%Y-%m"))
    else:
        start = day_start(local_day(now, zone), zone)
        end = start + timedelta(days=1)
        label = _("shop.label_today", day=services.local(start).strftime("%Y-%m-%d"))
    async with services.db.begin() as session:
        report = await redemptions.shop_report(session, actor.person_id, start, end)
    lines = [_("shop.title", period=label, count=report.count, total=report.total)]
    lines += [
        _(
            "shop.line",
            when=stamp(services, line.at),
            receipt=receipt_no(line.redemption_id),
            name=line.volunteer_name,
            amount=line.amount,
        )
        for line in report.lines
    ]
    if report.count > len(report.lines):
        lines.append(_("shop.more", n=report.count - len(report.lines)))
    await message.reply_text("\n".join(lines))


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("redeem", redeem_command))
    app.add_handler(CommandHandler("checkout", checkout_command))
    app.add_handler(CommandHandler("shop", shop_command))
