"""/invite: an admin (any role) or a cadre (volunteers of their village) makes a deep link.

Either in one line, ``/invite <role> <area> [uses] [days]`` (uses 0 = any number), or with
buttons: role → area → single or multi-use. Every step checks the permission again.
"""

from __future__ import annotations

from datetime import timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.context import Context
from bot.services import invites, org
from bot.services.invites import InviteRefusal, InviteView
from bot.services.org import AreaView
from bot.services.roles import ROLE_AREA_KIND, Role, invitable_roles, parse_role
from handlers.common import is_private, parse_id, reply

AREAS_PER_PAGE = 8
MAX_DAYS = 365
MAX_USES = 100_000  # more than a district has people; and a number the database holds


def _link(context: Context, code: str) -> str:
    return f"https://t.me/{context.bot.username}?start={code}"


def _created_text(context: Context, view: InviteView) -> str:
    _ = context._
    if view.max_uses is None:
        uses = _("invite.uses_many")
    elif view.max_uses == 1:
        uses = _("invite.uses_single")
    else:
        uses = _("invite.uses_n", n=view.max_uses)
    expires = context.services.local(view.expires_at).strftime("%Y-%m-%d %H:%M")
    return _(
        "invite.created",
        role=_(f"role.{view.role.value}"),
        area=view.area_name,
        uses=uses,
        expires=expires,
        link=_link(context, view.code),
    )


async def _areas_for(context: Context, role: Role) -> list[AreaView]:
    actor = context.actor
    assert actor is not None
    async with context.services.db.begin() as session:
        areas = await org.areas_of_kind(session, ROLE_AREA_KIND[role])
    if not actor.has(Role.admin):  # a cadre invites only into their own villages
        own = set(actor.area_ids(Role.cadre))
        areas = [a for a in areas if a.id in own]
    return areas


async def _create(
    context: Context, role: Role, area_id: int, max_uses: int | None, days: int
) -> str:
    actor = context.actor
    assert actor is not None
    services = context.services
    async with services.db.begin() as session:
        result = await invites.create_invite(
            session,
            actor,
            role,
            area_id,
            max_uses=max_uses,
            valid_for=timedelta(days=days),
            now=services.now(),
        )
    if isinstance(result, InviteRefusal):
        return context._(f"invite.refused.{result.value}")
    return _created_text(context, result)


async def invite_command(update: Update, context: Context) -> None:
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    if not is_private(update):
        await reply(update, context, "common.private_only", command="/invite")
        return
    roles = invitable_roles(actor.role_set)
    if not roles:
        await reply(update, context, "invite.not_allowed")
        return
    if context.args:
        await message.reply_text(await _from_args(context, context.args))
        return
    buttons = [
        [InlineKeyboardButton(context._(f"role.{r.value}"), callback_data=f"inv:r:{r.value}:0")]
        for r in roles
    ]
    await message.reply_text(
        context._("invite.choose_role"), reply_markup=InlineKeyboardMarkup(buttons)
    )


async def _from_args(context: Context, args: list[str]) -> str:
    role = parse_role(args[0]) if args else None
    if role is None or len(args) < 2 or len(args) > 4:
        return context._("invite.usage")
    async with context.services.db.begin() as session:
        area = await org.find_area(session, args[1])
    if area is None:
        return context._("invite.unknown_area", area=args[1][:40])
    try:
        uses = int(args[2]) if len(args) > 2 else 1
        days = int(args[3]) if len(args) > 3 else context.services.rules.invites.default_expiry_days
    except ValueError:
        return context._("invite.usage")
    if not 0 <= uses <= MAX_USES or not 1 <= days <= MAX_DAYS:
        return context._("invite.usage")
    return await _create(context, role, area.id, uses or None, days)


def _area_keyboard(
    context: Context, role: Role, areas: list[AreaView], page: int
) -> InlineKeyboardMarkup:
    start = page * AREAS_PER_PAGE
    rows = [
        [InlineKeyboardButton(a.name, callback_data=f"inv:a:{role.value}:{a.id}")]
        for a in areas[start : start + AREAS_PER_PAGE]
    ]
    nav = []
    if page > 0:
        nav.append(
            InlineKeyboardButton(
                context._("page.prev"), callback_data=f"inv:r:{role.value}:{page - 1}"
            )
        )
    if start + AREAS_PER_PAGE < len(areas):
        nav.append(
            InlineKeyboardButton(
                context._("page.next"), callback_data=f"inv:r:{role.value}:{page + 1}"
            )
        )
    if nav:
        rows.append(nav)
    return InlineKeyboardMarkup(rows)


async def invite_button(update: Update, context: Context) -> None:
    query = update.callback_query
    actor = context.actor
    if query is None or query.data is None or actor is None:
        return
    parts = query.data.split(":")
    role = parse_role(parts[2]) if len(parts) > 2 else None
    allowed = invitable_roles(actor.role_set)
    if role is None or role not in allowed:
        await query.answer(context._("invite.not_allowed"), show_alert=True)
        return
    try:
        step, number = parts[1], parse_id(parts[3])
        if number is None:
            raise ValueError(parts[3])
        multi = parts[4] == "0" if step == "u" else False
    except (IndexError, ValueError):
        await query.answer(context._("button.stale"), show_alert=True)
        return
    if step == "r":
        areas = await _areas_for(context, role)
        if not areas:
            await query.answer()
            await query.edit_message_text(context._("invite.no_areas"))
            return
        page = max(0, min(number, (len(areas) - 1) // AREAS_PER_PAGE))
        await query.answer()
        await query.edit_message_text(
            context._("invite.choose_area", role=context._(f"role.{role.value}")),
            reply_markup=_area_keyboard(context, role, areas, page),
        )
    elif step == "a":
        buttons = [
            [
                InlineKeyboardButton(
                    context._("invite.uses_single"), callback_data=f"inv:u:{role.value}:{number}:1"
                ),
                InlineKeyboardButton(
                    context._("invite.uses_many"), callback_data=f"inv:u:{role.value}:{number}:0"
                ),
            ]
        ]
        await query.answer()
        await query.edit_message_text(
            context._("invite.choose_uses"), reply_markup=InlineKeyboardMarkup(buttons)
        )
    elif step == "u":
        days = context.services.rules.invites.default_expiry_days
        text = await _create(context, role, number, None if multi else 1, days)
        await query.answer()
        await query.edit_message_text(text)
    else:
        await query.answer(context._("button.stale"), show_alert=True)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("invite", invite_command))
    app.add_handler(CallbackQueryHandler(invite_button, pattern=r"^inv:"))
