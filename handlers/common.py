"""Cross-cutting pieces for handlers: who is acting, and the usual refusals."""

from __future__ import annotations

from typing import Any

from telegram import Chat, Update
from telegram.ext import Application, TypeHandler

from bot.context import Context
from bot.receiving.processor import current_attempt
from bot.services import chats, drafts, org, people
from bot.services.roles import AreaKind

# Runs before every other handler group.
IDENTIFY_GROUP = -10
# In a draft's data: the update that made its current step.
UPDATE_KEY = "_update"
# A draft's last step, "sent": its change is made in the transaction that moves the draft
# there, and the draft is finished once the people are told.
SENT = "sent"


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


# The largest number a database id (64-bit) can be; forged data may carry any number at all.
MAX_ID = 2**63 - 1


def parse_id(text: str) -> int | None:
    """An id (or a small count) from button data or a typed argument: ASCII digits, maybe with
    a leading minus, that fit in 64 bits; None for anything else. (``str.isdigit`` is true for
    "²", which ``int`` refuses, and ``int`` takes numbers no database column holds.)"""
    digits = text.removeprefix("-")
    if not digits or not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        return None
    value = int(text)
    return value if -MAX_ID <= value <= MAX_ID else None


def is_private(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type == Chat.PRIVATE


def is_group(update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.type in (Chat.GROUP, Chat.SUPERGROUP)


def area_label(context: Context, kind: AreaKind | str, name: str) -> str:
    return context._("area.label", kind=context._(f"area.kind.{AreaKind(kind).value}"), name=name)


def this_update() -> int | None:
    """The Telegram update being handled (None outside the inbox, e.g. in a job)."""
    attempt = current_attempt()
    return attempt.update_id if attempt is not None else None


def stamped(data: dict[str, Any]) -> dict[str, Any]:
    """A draft's data with the update that makes its step. If telling the person fails, the
    update runs again from the inbox and must not take the same message or tap for the next
    step's answer (see ``made_by_this_update``)."""
    update_id = this_update()
    return data if update_id is None else {**data, UPDATE_KEY: update_id}


async def save_step(context: Context, step: str, data: dict[str, Any]) -> None:
    """Keep the acting person's draft at ``step``, stamped with the update that made it (see
    ``stamped``)."""
    actor = context.actor
    assert actor is not None
    async with context.services.db.begin() as session:
        await drafts.save(session, actor.person_id, step, stamped(data), context.services.now())


def made_by_this_update(data: dict[str, Any]) -> bool:
    """Whether this update already moved the draft (its first run failed telling people)."""
    update_id = this_update()
    return update_id is not None and data.get(UPDATE_KEY) == update_id


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(TypeHandler(Update, identify), group=IDENTIFY_GROUP)
