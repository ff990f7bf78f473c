"""/start: the welcome, and joining through an invite deep link (/start <code>)."""

from __future__ import annotations

import re

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.context import Context
from bot.services import invites, people
from bot.services.invites import JoinOutcome
from handlers.common import is_private, reply
from handlers.help import describe_roles, refresh_person_menu

# Deep-link payloads are at most 64 characters of A-Z a-z 0-9 _ -.
INVITE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_OUTCOME_KEYS = {
    JoinOutcome.joined: "start.joined",
    JoinOutcome.already_member: "start.already_member",
    JoinOutcome.unknown: "start.invite_unknown",
    JoinOutcome.expired: "start.invite_expired",
    JoinOutcome.used_up: "start.invite_used_up",
}


async def start(update: Update, context: Context) -> None:
    actor = context.actor
    if actor is None:
        return
    if not is_private(update):
        await reply(update, context, "start.use_private", bot=context.bot.username)
        return
    if not context.args:
        if actor.roles:
            # Telegram refuses a chat's menu before that person has opened the bot, so a
            # configured admin's menu (tried at start-up) is set here at the latest; before
            # the welcome, so that the menu is there when they read it.
            await refresh_person_menu(context, actor.telegram_id)
            await reply(
                update,
                context,
                "start.welcome_roles",
                name=actor.full_name,
                roles=describe_roles(context, actor),
            )
        else:
            await reply(update, context, "start.welcome_new", name=actor.full_name)
        return
    code = context.args[0]
    services = context.services
    if not INVITE_CODE.match(code):
        await reply(update, context, "start.invite_unknown")
        return
    async with services.db.begin() as session:
        result = await invites.join_with_invite(session, code, actor.person_id, services.now())
        if result.outcome is JoinOutcome.joined:
            person = await people.person_by_id(session, actor.person_id)
            context.actor = await people.load_actor(session, person)
    values: dict[str, object] = {}
    if result.role is not None:
        values = {
            "role": context._(f"role.{result.role.value}"),
            "area": result.area_name or "",
        }
    if result.outcome is JoinOutcome.joined:  # the new menu is there when they read this
        await refresh_person_menu(context, actor.telegram_id)
    await reply(update, context, _OUTCOME_KEYS[result.outcome], **values)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("start", start))
