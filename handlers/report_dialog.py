"""Private conversations, kept as drafts in the database so a restart resumes them:
the guided /report, a liaison's rectification, and a typed reason.

/report: category → photos → description → location or address → village → confirm, with
back and cancel at every step.
"""

from __future__ import annotations

import secrets
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.context import Context
from bot.services import drafts, org, people, problems
from bot.services.drafts import DraftView
from bot.services.problem_machine import Action
from bot.services.problems import PhotoIn, ProblemView, ReportIn, distance_m
from bot.services.roles import AreaKind, Role, may_report_privately
from handlers import announce as announce_dialog
from handlers import claims as claim_dialog
from handlers.common import (
    SENT,
    is_private,
    made_by_this_update,
    parse_id,
    reply,
    save_step,
    stamped,
)
from handlers.problem_actions import (
    announce,
    begin_rectification,
    make_transition,
    photos_done_keyboard,
    refusal_text,
)
from handlers.problem_views import card_text, notify, photo_of, report_keyboard
from handlers.reports import group_report_command
from jobs import media

STEPS = ("category", "photos", "description", "location", "village", "confirm")
MAX_DESCRIPTION = 1000
VILLAGES_PER_PAGE = 8


def _nav(context: Context, *, back: bool = True) -> list[InlineKeyboardButton]:
    row = [InlineKeyboardButton(context._("draft.cancel"), callback_data="d:cancel")]
    if back:
        row.insert(0, InlineKeyboardButton(context._("draft.back"), callback_data="d:back"))
    return row


def _moved_by_this_update(draft: DraftView) -> bool:
    return draft.kind in ("report", "rectify") and made_by_this_update(draft.data)


async def _ask_again(context: Context, chat_id: int, draft: DraftView) -> None:
    """This update's first run moved the draft, then failed telling the person: ask what the
    step it moved to asks, once more."""
    if draft.kind == "rectify" and draft.step == "photos":  # a photo was added
        await context.bot.send_message(
            chat_id, context._("report.photo_received"), reply_markup=photos_done_keyboard(context)
        )
    elif draft.kind == "rectify":
        await context.bot.send_message(chat_id, context._("rectify.ask_note"))
    else:
        await _prompt(context, chat_id, draft.step, draft.data)


async def _prompt(context: Context, chat_id: int, step: str, data: dict[str, Any]) -> None:
    """Ask for what ``step`` needs, with its buttons."""
    _ = context._
    rows: list[list[InlineKeyboardButton]] = []
    if step == "category":
        buttons = [
            InlineKeyboardButton(c.name.get(_.locale), callback_data=f"d:cat:{c.key}")
            for c in context.services.rules.categories
        ]
        rows = [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
        rows.append(_nav(context, back=False))
        text = _("report.ask_category")
    elif step == "photos":
        rows = [[InlineKeyboardButton(_("draft.done"), callback_data="d:done")], _nav(context)]
        text = _("report.ask_photos")
    elif step == "description":
        rows = [_nav(context)]
        text = _("report.ask_description")
    elif step == "location":
        rows = [_nav(context)]
        text = _("report.ask_location")
    elif step == "village":
        async with context.services.db.begin() as session:
            villages = await org.areas_of_kind(session, AreaKind.village)
        page = int(data.get("page", 0))
        start = page * VILLAGES_PER_PAGE
        rows = [
            [InlineKeyboardButton(v.name, callback_data=f"d:vil:{v.id}")]
            for v in villages[start : start + VILLAGES_PER_PAGE]
        ]
        paging = []
        if page > 0:
            paging.append(InlineKeyboardButton(_("page.prev"), callback_data=f"d:vp:{page - 1}"))
        if start + VILLAGES_PER_PAGE < len(villages):
            paging.append(InlineKeyboardButton(_("page.next"), callback_data=f"d:vp:{page + 1}"))
        if paging:
            rows.append(paging)
        rows.append(_nav(context))
        text = _("report.ask_village")
    else:  # confirm
        rows = [[InlineKeyboardButton(_("report.submit"), callback_data="d:ok")], _nav(context)]
        category = context.services.rules.category(str(data.get("category")))
        where = data.get("address") or (
            f"{data['lat']:.5f}, {data['lon']:.5f}" if "lat" in data else "-"
        )
        text = _(
            "report.confirm",
            category=category.name.get(_.locale) if category else "-",
            photos=len(data.get("photos", [])),
            description=data.get("description", ""),
            place=where,
            village=data.get("village_name", "-"),
        )
    await context.bot.send_message(chat_id, text, reply_markup=InlineKeyboardMarkup(rows))


async def report_command(update: Update, context: Context) -> None:
    actor = context.actor
    if actor is None or update.effective_chat is None:
        return
    if not is_private(update):
        await group_report_command(update, context)
        return
    if not may_report_privately(actor.role_set):  # nothing is started, nobody is told
        await reply(update, context, "report.need_role")
        return
    # The key makes a double tap on "submit" one problem. Not the draft's id: SQLite hands a
    # finished draft's id to the next one, which made a second report return the first.
    data = {"photos": [], "key": secrets.token_urlsafe(12)}
    async with context.services.db.begin() as session:
        await drafts.start(
            session, actor.person_id, "report", "category", data, context.services.now()
        )
    await _prompt(context, update.effective_chat.id, "category", {})


async def rectified_command(update: Update, context: Context) -> None:
    if context.actor is None:
        return
    if not is_private(update):
        await reply(update, context, "common.private_only", command="/rectified")
        return
    if not context.args:
        await reply(update, context, "rectify.usage")
        return
    await begin_rectification(context, context.args[0].strip().upper()[:32])


async def cancel_command(update: Update, context: Context) -> None:
    actor = context.actor
    if actor is None:
        return
    async with context.services.db.begin() as session:
        had = await drafts.current(session, actor.person_id)
        await drafts.finish(session, actor.person_id)
    if had:
        await reply(update, context, "draft.cancelled")
    else:
        await reply(update, context, "draft.nothing_to_cancel")


async def _add_photo(update: Update, context: Context, draft: DraftView, message: Message) -> None:
    photo, problem = photo_of(message)
    if problem is not None:
        await reply(update, context, problem)
        return
    if photo is None:
        await reply(update, context, "report.need_photo")
        return
    data = draft.data
    data.setdefault("photos", [])
    if len(data["photos"]) >= 10:
        await reply(update, context, "report.photo_limit")
        return
    data["photos"].append([photo.file_id, photo.file_unique_id, photo.message_id, photo.size])
    first_of_album = (
        message.media_group_id is not None and data.get("album") != message.media_group_id
    )
    data["album"] = message.media_group_id
    await save_step(context, draft.step, data)
    # One acknowledgement per album, not one per picture.
    if message.media_group_id is None or first_of_album:
        keyboard = (
            photos_done_keyboard(context)
            if draft.kind == "rectify"
            else InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton(context._("draft.done"), callback_data="d:done")],
                    _nav(context),
                ]
            )
        )
        await message.reply_text(context._("report.photo_received"), reply_markup=keyboard)


async def _in_district(context: Context, lat: float, lon: float) -> bool:
    geo = context.services.rules.district_geo
    return geo is None or distance_m(lat, lon, geo.latitude, geo.longitude) <= geo.radius_km * 1000


async def _report_message(
    update: Update, context: Context, draft: DraftView, message: Message
) -> None:
    data, step = draft.data, draft.step
    chat_id = message.chat.id
    if step == "photos":
        await _add_photo(update, context, draft, message)
    elif step == "description":
        text = (message.text or "").strip()
        if not text:
            await reply(update, context, "report.need_text")
        elif len(text) > MAX_DESCRIPTION:
            await reply(update, context, "report.too_long", n=MAX_DESCRIPTION)
        else:
            data["description"] = text
            await save_step(context, "location", data)
            await _prompt(context, chat_id, "location", data)
    elif step == "location":
        if message.location is not None:
            lat, lon = message.location.latitude, message.location.longitude
            if not await _in_district(context, lat, lon):
                await reply(update, context, "report.outside_district")
                return
            data.update(lat=lat, lon=lon)
        elif (message.text or "").strip():
            data["address"] = message.text.strip()[:300] if message.text else ""
        else:
            await reply(update, context, "report.need_location")
            return
        await save_step(context, "village", data)
        await _prompt(context, chat_id, "village", data)
    else:
        await reply(update, context, "draft.use_buttons")


async def on_private_message(update: Update, context: Context) -> None:
    """Every private message that is not a command: a step of the person's conversation."""
    actor = context.actor
    message = update.effective_message
    if actor is None or message is None:
        return
    async with context.services.db.begin() as session:
        draft = await drafts.current(session, actor.person_id)
    if draft is None:
        await reply(update, context, "fallback.not_understood")
        return
    if draft.kind == "report" and draft.step == SENT:  # reported; telling failed
        await _tell_reported(context, message.chat.id, draft.data)
        return
    if _moved_by_this_update(draft):
        await _ask_again(context, message.chat.id, draft)
        return
    if draft.kind == "report":
        await _report_message(update, context, draft, message)
    elif draft.kind == "rectify" and draft.step == "photos":
        await _add_photo(update, context, draft, message)
    elif draft.kind in ("rectify", "reason"):
        await _typed_text(update, context, draft, message)
    elif draft.kind in claim_dialog.DRAFT_KINDS:
        await claim_dialog.on_draft_message(update, context, draft, message)
    elif draft.kind in announce_dialog.DRAFT_KINDS:
        await announce_dialog.on_draft_message(update, context, draft, message)


async def _typed_text(update: Update, context: Context, draft: DraftView, message: Message) -> None:
    """The rectification note, or the reason for a refusal."""
    actor = context.actor
    assert actor is not None
    text = (message.text or "").strip()
    if not text:
        await reply(update, context, "report.need_text")
        return
    if len(text) > MAX_DESCRIPTION:
        await reply(update, context, "report.too_long", n=MAX_DESCRIPTION)
        return
    code = str(draft.data["code"])
    if draft.kind == "rectify":
        action = Action.submit
        photos = [PhotoIn(p[0], p[1], p[2], p[3]) for p in draft.data.get("photos", [])]
        result = await make_transition(context, code, action, reason=text, after_photos=photos)
    else:
        action = Action(draft.data["action"])
        result = await make_transition(context, code, action, reason=text)
    # The draft is finished last: if telling people fails, this update runs again, finds the
    # draft and the transition made (keyed by the update), and tells them then.
    if not isinstance(result, ProblemView):
        await message.reply_text(refusal_text(context, result, code))
    else:
        await message.reply_text(context._(f"done.{action.value}", code=code))
        media.soon(context)
        await announce(context, code, action, text)
    async with context.services.db.begin() as session:
        await drafts.finish(session, actor.person_id)


async def draft_button(update: Update, context: Context) -> None:
    query = update.callback_query
    actor = context.actor
    if query is None or query.data is None or actor is None or query.message is None:
        return
    async with context.services.db.begin() as session:
        draft = await drafts.current(session, actor.person_id)
    verb, _, arg = query.data.removeprefix("d:").partition(":")
    if draft is None:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    chat_id = query.message.chat.id
    if draft.kind == "report" and draft.step == SENT:  # reported; telling failed
        await query.answer()
        await _tell_reported(context, chat_id, draft.data)
        return
    if _moved_by_this_update(draft):
        await query.answer()
        await _ask_again(context, chat_id, draft)
        return
    data = draft.data
    if verb == "cancel":
        async with context.services.db.begin() as session:
            await drafts.finish(session, actor.person_id)
        await query.answer()
        await context.bot.send_message(chat_id, context._("draft.cancelled"))
        return
    if draft.kind == "rectify" and verb == "done" and draft.step == "photos":
        if not data.get("photos"):
            await query.answer(context._("report.need_photo"), show_alert=True)
            return
        await save_step(context, "note", data)
        await query.answer()
        await context.bot.send_message(chat_id, context._("rectify.ask_note"))
        return
    if draft.kind != "report":
        await query.answer(context._("button.stale"), show_alert=True)
        return
    step = draft.step
    if verb == "back" and step != "category":
        previous = STEPS[STEPS.index(step) - 1]
        await save_step(context, previous, data)
        await query.answer()
        await _prompt(context, chat_id, previous, data)
        return
    expected = {
        "cat": "category",
        "done": "photos",
        "vil": "village",
        "vp": "village",
        "ok": "confirm",
    }
    if expected.get(verb) != step:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    if verb == "cat":
        if context.services.rules.category(arg) is None:
            await query.answer(context._("button.stale"), show_alert=True)
            return
        data["category"] = arg
        next_step = "photos"
    elif verb == "done":
        if not data.get("photos"):
            await query.answer(context._("report.need_photo"), show_alert=True)
            return
        next_step = "description"
    elif verb == "vp":
        page = parse_id(arg or "0")
        if page is None:
            await query.answer(context._("button.stale"), show_alert=True)
            return
        data["page"] = max(0, page)
        next_step = "village"
    elif verb == "vil":
        village_id = parse_id(arg)
        async with context.services.db.begin() as session:
            village = None if village_id is None else await org.area_by_id(session, village_id)
        if village is None or village.kind is not AreaKind.village:
            await query.answer(context._("button.stale"), show_alert=True)
            return
        data.update(village_id=village.id, village_name=village.name)
        next_step = "confirm"
    else:  # ok
        await query.answer()
        await _submit_report(context, chat_id, draft)
        return
    await save_step(context, next_step, data)
    await query.answer()
    await _prompt(context, chat_id, next_step, data)


async def _submit_report(context: Context, chat_id: int, draft: DraftView) -> None:
    actor = context.actor
    assert actor is not None
    services = context.services
    data = draft.data
    report = ReportIn(
        reporter_id=actor.person_id,
        category=str(data["category"]),
        description=str(data.get("description", "")),
        photos=[PhotoIn(p[0], p[1], p[2], p[3]) for p in data.get("photos", [])],
        source_chat_id=chat_id,
        source_key=f"d:{data.get('key') or draft.id}",  # drafts begun before the key: their id
        village_id=data.get("village_id"),
        latitude=data.get("lat"),
        longitude=data.get("lon"),
        address=data.get("address"),
    )
    now = services.now()
    async with services.db.begin() as session:
        result = await problems.report_problem(
            session,
            report,
            now=now,
            code_prefix=services.rules.problem_code_prefix,
            zone_year=problems.code_year(now, services.settings.zone),
        )
        # The draft waits as "sent" until the reporter and the admins are told: if that fails,
        # the update runs again and goes on telling them (the problem is keyed by the draft).
        sent = {"code": result.problem.code, "created": result.created}
        await drafts.save(session, actor.person_id, SENT, stamped(sent), now)
    await _tell_reported(context, chat_id, sent)


async def _tell_reported(context: Context, chat_id: int, sent: dict[str, Any]) -> None:
    """The reporter gets the code and the card; the admins, a new problem's card."""
    actor = context.actor
    assert actor is not None
    services = context.services
    code = str(sent["code"])
    now = services.now()
    async with services.db.begin() as session:
        card = await problems.problem_card(session, code, now)
        admins = await problems.people_with_role(session, Role.admin)
        locales = await people.locales_of(session, admins)
    assert card is not None
    await context.bot.send_message(
        chat_id, context._("report.done", code=code) + "\n\n" + card_text(context, card)
    )
    media.soon(context)
    if sent.get("created"):
        for tid in admins:
            t = services.i18n.translator(locales.get(tid))
            await notify(
                context,
                tid,
                t("notice.new_report") + "\n\n" + card_text(context, card, t),
                report_keyboard(context, t, code, ask_category=False),
                photos=card.before,
            )
    async with services.db.begin() as session:
        await drafts.finish(session, actor.person_id)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("report", report_command))
    app.add_handler(CommandHandler("rectified", rectified_command))
    app.add_handler(CommandHandler("cancel", cancel_command))
    app.add_handler(CallbackQueryHandler(draft_button, pattern=r"^d:"))
    app.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE & ~filters.COMMAND & ~filters.StatusUpdate.ALL,
            on_private_message,
        )
    )
