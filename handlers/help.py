"""/help for the asker's roles, and the command menus per language and scope."""

from __future__ import annotations

import logging

from telegram import (
    BotCommand,
    BotCommandScope,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import Application, CommandHandler

from bot.context import Context, Services
from bot.i18n import LOCALES, Translator
from bot.services.people import Actor
from bot.services.roles import GROUP_ADMIN_COMMANDS, GROUP_COMMANDS, Role, commands_for
from handlers.common import is_group

log = logging.getLogger(__name__)

# Telegram wants two-letter language codes for per-language menus.
MENU_LANGUAGE = {"zh_CN": "zh", "en": "en"}


def describe_roles(context: Context, actor: Actor) -> str:
    parts = [
        context._("role.in_area", role=context._(f"role.{r.role.value}"), area=r.area_name)
        if r.area_name
        else context._(f"role.{r.role.value}")
        for r in actor.roles
    ]
    return context._("list.separator").join(parts)


async def help_command(update: Update, context: Context) -> None:
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    _ = context._
    if is_group(update):
        commands = list(GROUP_ADMIN_COMMANDS if actor.has(Role.admin) else GROUP_COMMANDS)
    else:
        commands = commands_for(actor.role_set)
    lines = [_("help.title")]
    lines.append(
        _("help.roles", roles=describe_roles(context, actor)) if actor.roles else _("help.no_role")
    )
    lines += [_("help.line", command=c, description=_(f"cmd.{c}")) for c in commands]
    await message.reply_text("\n".join(lines))


def _commands(translator: Translator, names: list[str] | tuple[str, ...]) -> list[BotCommand]:
    return [BotCommand(name, translator(f"cmd.{name}")) for name in names]


async def _set(
    app: Application,  # type: ignore[type-arg]
    services: Services,
    scope: BotCommandScope,
    names: list[str] | tuple[str, ...],
) -> None:
    default = services.i18n.translator(services.settings.default_locale)
    await app.bot.set_my_commands(_commands(default, names), scope=scope)
    for locale in LOCALES:
        translator = services.i18n.translator(locale)
        await app.bot.set_my_commands(
            _commands(translator, names), scope=scope, language_code=MENU_LANGUAGE[locale]
        )


async def set_menus(app: Application, services: Services) -> None:  # type: ignore[type-arg]
    """The command menu per language and scope: private chats, groups, group admins, and the
    configured admins' own chats."""
    await _set(app, services, BotCommandScopeAllPrivateChats(), commands_for([]))
    await _set(app, services, BotCommandScopeAllGroupChats(), GROUP_COMMANDS)
    await _set(app, services, BotCommandScopeAllChatAdministrators(), GROUP_ADMIN_COMMANDS)
    for admin_id in services.settings.admin_ids:
        try:
            await _set(app, services, BotCommandScopeChat(admin_id), commands_for([Role.admin]))
        except TelegramError as exc:  # an admin who has not opened the bot yet
            log.info("no command menu for admin %s yet: %s", admin_id, exc)


async def refresh_person_menu(context: Context, telegram_id: int) -> None:
    """After someone gains a role, their private menu shows the commands that role brings."""
    actor = context.actor
    if actor is None:
        return
    try:
        await _set(
            context.application,
            context.services,
            BotCommandScopeChat(telegram_id),
            commands_for(actor.role_set),
        )
    except TelegramError as exc:
        log.warning("could not set the menu for %s: %s", telegram_id, exc)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("help", help_command))
