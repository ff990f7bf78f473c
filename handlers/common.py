"""Cross-cutting pieces for handlers: who is acting, and the usual refusals."""

from __future__ import annotations

from telegram import Chat, Update
from telegram.ext import Application, TypeHandler

from bot.context import Context
from bot.services import chats, org, people
from bot.services.roles import AreaKind

# Runs before every other handler group.
IDENTIFY_GROUP = -10


async def identify(update: Update, context: Context) -> None:
    """Record the person (and the group) behind the update and load their roles and language."""
    user = update.effective_user
    chat = update.effective_chat
    if user is None or user.is_bot:
        return
    services = context.services
    async with services.db.begin() as session:
        person = await people.ensure_person(
            session,
            user.id,
            user.full_name,
            user.username,
            private=chat is not None and chat.type == Chat.PRIVATE,
        )
        if user.id in services.settings.admin_ids:  # the district is asked for admins only
            area = await org.district(session)
            await people.ensure_configured_admin(
                session, person, services.settings.admin_ids, area.id if area else None
            )
        if chat is not None and chat.type in (Chat.GROUP, Chat.SUPERGROUP):
            await chats.note_chat(session, chat.id, chat.title or "")
        context.actor = await people.load_actor(session, person)
    context.translator = services.i18n.translator(context.actor.locale)


async def reply(update: Update, context: Context, key: str, /, **values: object) -> None:
    """Answer in the chat the update came from, in the actor's language."""
    message = update.effective_message
    if message is not None:
        await message.reply_text(context._(key, **values))


def is_private(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type == Chat.PRIVATE


def is_group(update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.type in (Chat.GROUP, Chat.SUPERGROUP)


def area_label(context: Context, kind: AreaKind | str, name: str) -> str:
    return context._("area.label", kind=context._(f"area.kind.{AreaKind(kind).value}"), name=name)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(TypeHandler(Update, identify), group=IDENTIFY_GROUP)
