"""Reports in a bound work group: a photo or album whose caption carries #问题 / #report, or
/report as a reply to a photo. Every photo is recorded as it arrives; an album becomes one
problem once its parts stop arriving."""

from __future__ import annotations

import logging

from telegram import Message, Update
from telegram.ext import Application, MessageHandler, filters

from bot.context import Context
from bot.services import chats, intake, people, problems
from bot.services.intake import Part, has_report_tag, strip_tag
from bot.services.problems import PhotoIn, ReportIn
from handlers.common import reply
from handlers.problem_views import card_text, photo_of, report_keyboard
from jobs import albums, media

log = logging.getLogger(__name__)


def _part(message: Message, photo: PhotoIn) -> Part:
    assert message.from_user is not None
    return Part(
        message.chat.id,
        message.message_id,
        message.media_group_id,
        message.from_user.id,
        photo.file_id,
        photo.file_unique_id,
        photo.size,
        message.caption,
    )


async def create_group_report(
    context: Context, chat_id: int, parts: list[Part], *, take: bool = False, again: bool = False
) -> None:
    """Make one problem of ``parts`` (one message or one album) and answer in the thread.

    ``take``: mark the parts taken in the same transaction, and stop if another worker took
    them first. ``again``: this message's update runs a second time (the first run was cut
    short), so the answer may not have gone out: send the card even if the problem exists."""
    services = context.services
    first = parts[0]
    caption = next((p.caption for p in parts if p.caption), "") or ""
    description = strip_tag(caption)
    guessed = context.services.rules.guess_category(description)
    source_key = f"g:{first.media_group_id}" if first.media_group_id else f"m:{first.message_id}"
    now = services.now()
    async with services.db.begin() as session:
        if take and not await intake.mark_taken(session, chat_id, [p.message_id for p in parts]):
            return
        reporter = next(
            (p.sender_telegram_id for p in parts if p.caption), first.sender_telegram_id
        )
        reporter_id = await people.person_id_for(session, reporter)
        if reporter_id is None:  # the sender has never been seen (e.g. an old message)
            reporter_id = (await people.ensure_person(session, reporter, str(reporter), None)).id
        result = await problems.report_problem(
            session,
            ReportIn(
                reporter_id,
                guessed or "other",
                description,
                [PhotoIn(p.file_id, p.file_unique_id, p.message_id, p.file_size) for p in parts],
                chat_id,
                source_key,
            ),
            now=now,
            code_prefix=services.rules.problem_code_prefix,
            zone_year=problems.code_year(now, services.settings.zone),
        )
        card = await problems.problem_card(session, result.problem.code, now, just_reported=result)
    assert card is not None
    media.soon(context)
    if not result.created and not again:
        if result.added_photos:  # a late album part: it joined the problem; say so under it
            text = context._("report.photos_added", n=result.added_photos, code=result.problem.code)
            reply_to = max(p.message_id for p in parts)
        else:
            text, reply_to = context._("report.already", code=result.problem.code), first.message_id
        await context.bot.send_message(chat_id, text, reply_to_message_id=reply_to)
        return
    await context.bot.send_message(
        chat_id,
        context._("report.created", code=result.problem.code) + "\n\n" + card_text(context, card),
        reply_markup=report_keyboard(
            context, context._, result.problem.code, ask_category=guessed is None
        ),
        reply_to_message_id=first.message_id,
    )


async def group_photo(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or message.from_user is None or context.actor is None:
        return
    tagged = has_report_tag(message.caption)
    photo, problem = photo_of(message)
    now = context.services.now()
    first_run, parts = True, []
    # One transaction: whether the group is bound, and (if so) the photo recorded.
    async with context.services.db.begin() as session:
        bound = await chats.binding_of(session, message.chat.id)
        if bound is not None and problem is None and photo is not None:
            # False when this update runs again after a run cut short (the inbox never hands
            # out a finished one twice): the report is then made, or answered, as the first
            # run would.
            first_run = await intake.record_part(session, _part(message, photo), now)
            parts = (
                await intake.take_message(session, message.chat.id, message.message_id)
                if tagged and message.media_group_id is None
                else []
            )
    if bound is None:
        if tagged:
            await reply(update, context, "report.group_not_bound")
        return
    if problem is not None:
        if tagged or message.media_group_id is not None:
            await reply(update, context, problem)
        return
    if photo is None:
        return
    if parts:
        await create_group_report(context, message.chat.id, parts, again=not first_run)
    elif message.media_group_id is not None:
        albums.schedule(context, message.chat.id, message.media_group_id)


async def group_report_command(update: Update, context: Context) -> None:
    """/report as a reply to a photo (or one photo of an album) in a bound group."""
    message = update.effective_message
    if message is None:
        return
    async with context.services.db.begin() as session:
        bound = await chats.binding_of(session, message.chat.id)
    if bound is None:
        await reply(update, context, "report.group_not_bound")
        return
    original = message.reply_to_message
    photo, problem = photo_of(original) if original is not None else (None, None)
    if problem is not None:
        await reply(update, context, problem)
        return
    if original is None or photo is None or original.from_user is None:
        await reply(update, context, "report.reply_to_photo")
        return
    async with context.services.db.begin() as session:
        await intake.record_part(session, _part(original, photo), context.services.now())
        parts = await intake.take_message(session, message.chat.id, original.message_id)
    await create_group_report(context, message.chat.id, parts)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(
        MessageHandler(
            filters.ChatType.GROUPS & (filters.PHOTO | filters.Document.ALL), group_photo
        )
    )
