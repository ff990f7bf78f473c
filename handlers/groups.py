"""Work groups: the bot joining one, and /bindgroup binding it to the district or a subject."""

from __future__ import annotations

import logging

from telegram import (
    ChatMember,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, ChatMemberHandler, CommandHandler

from bot.context import Context
from bot.services import chats, org
from bot.services.chats import Binding
from bot.services.roles import AreaKind, Role
from handlers.common import area_label, is_group, parse_id, reply
from jobs import leader_summary

log = logging.getLogger(__name__)


async def _bot_sees_photos(context: Context, chat_id: int) -> bool:
    """A bot sees every group message only with privacy mode off, or as a group admin. Asked
    afresh each time: privacy mode may have been turned off in @BotFather since start-up."""
    try:
        if (await context.bot.get_me()).can_read_all_group_messages:
            return True
        member = await context.bot.get_chat_member(chat_id, context.bot.id)
    except TelegramError as exc:
        log.warning("cannot check the bot's status in %s: %s", chat_id, exc)
        return False
    return member.status in (ChatMember.ADMINISTRATOR, ChatMember.OWNER)


async def _bound_text(context: Context, binding: Binding) -> str:
    text = context._("bind.done", area=area_label(context, binding.area_kind, binding.area_name))
    if not await _bot_sees_photos(context, binding.telegram_chat_id):
        text += "\n\n" + context._("bind.privacy_warning", bot=context.bot.username)
    return text


async def _bind(context: Context, update: Update, area_id: int) -> Binding | None:
    chat = update.effective_chat
    actor = context.actor
    assert chat is not None and actor is not None
    services = context.services
    async with services.db.begin() as session:
        return await chats.bind_group(
            session,
            chat.id,
            chat.title or "",
            area_id,
            by_person_id=actor.person_id,
            now=services.now(),
        )


async def bindgroup_command(update: Update, context: Context) -> None:
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    if not is_group(update):
        await reply(update, context, "bind.group_only")
        return
    if not actor.has(Role.admin):
        await reply(update, context, "bind.not_admin")
        return
    services = context.services
    if context.args:
        async with services.db.begin() as session:
            area = await org.find_area(session, " ".join(context.args))
        if area is None or area.kind is AreaKind.village:
            await reply(update, context, "bind.unknown_area")
            return
        binding = await _bind(context, update, area.id)
        assert binding is not None
        await message.reply_text(await _bound_text(context, binding))
        return
    async with services.db.begin() as session:
        areas = await org.areas_of_kind(session, AreaKind.district)
        areas += await org.areas_of_kind(session, AreaKind.subject)
    if not areas:
        await reply(update, context, "bind.no_areas")
        return
    buttons = [
        [InlineKeyboardButton(area_label(context, a.kind, a.name), callback_data=f"bind:{a.id}")]
        for a in areas
    ]
    await message.reply_text(context._("bind.choose"), reply_markup=InlineKeyboardMarkup(buttons))


async def bind_button(update: Update, context: Context) -> None:
    query = update.callback_query
    actor = context.actor
    if query is None or query.data is None or actor is None:
        return
    if not actor.has(Role.admin):
        await query.answer(context._("bind.not_admin"), show_alert=True)
        return
    area_id = parse_id(query.data.removeprefix("bind:"))
    if area_id is None:
        area_id = -1
    binding = await _bind(context, update, area_id) if is_group(update) else None
    if binding is None:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    await query.answer()
    await query.edit_message_text(await _bound_text(context, binding))


def _joined(change: ChatMemberUpdated) -> bool:
    was = change.old_chat_member.status in (ChatMember.LEFT, ChatMember.BANNED)
    now = change.new_chat_member.status in (
        ChatMember.MEMBER,
        ChatMember.ADMINISTRATOR,
        ChatMember.OWNER,
    )
    return was and now


def _removed(change: ChatMemberUpdated) -> bool:
    return change.new_chat_member.status in (ChatMember.LEFT, ChatMember.BANNED)


async def bot_membership(update: Update, context: Context) -> None:
    change = update.my_chat_member
    if change is None:
        return
    if change.chat.type == "private":
        if change.new_chat_member.status == ChatMember.BANNED:  # the person blocked the bot
            await leader_summary.on_private_chat_gone(context.services, change.chat.id)
        return
    if change.chat.type not in ("group", "supergroup"):
        return
    if _removed(change):
        async with context.services.db.begin() as session:
            if await chats.unbind(session, change.chat.id):
                log.info("removed from group %s: its binding is forgotten", change.chat.id)
        return
    if not _joined(change):
        return
    async with context.services.db.begin() as session:
        await chats.note_chat(session, change.chat.id, change.chat.title or "")
    await context.bot.send_message(change.chat.id, context._("group.hello"))


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("bindgroup", bindgroup_command))
    app.add_handler(CallbackQueryHandler(bind_button, pattern=r"^bind:"))
    app.add_handler(ChatMemberHandler(bot_membership, ChatMemberHandler.MY_CHAT_MEMBER))
