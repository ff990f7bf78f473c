"""Activity claims: /claim in private (type → one photo → a line of text, kept as a draft so a
restart resumes it, /cancel or the button any time); the village's cadres get it with approve
and refuse buttons (refusing asks for a reason, privately); the volunteer is told either way.
/claims lists what waits for a cadre."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.context import Context
from bot.i18n import Translator
from bot.services import claims, drafts
from bot.services.claims import ClaimRefusal, ClaimView, Decided
from bot.services.drafts import DraftView
from bot.services.points import Change
from bot.services.problems import PhotoIn
from bot.services.roles import Role
from handlers.common import SENT, is_private, parse_id, reply, stamped, this_update
from handlers.points_views import activity_name, entry_line, policy_of, stamp
from handlers.problem_views import notify, photo_of

DRAFT_CLAIM = "claim"
DRAFT_REFUSAL = "claim_refusal"
DRAFT_KINDS = (DRAFT_CLAIM, DRAFT_REFUSAL)
MAX_TEXT = 200
LIST_LIMIT = 10


def _cancel_row(context: Context) -> list[InlineKeyboardButton]:
    return [InlineKeyboardButton(context._("draft.cancel"), callback_data="cl:x")]


def decision_keyboard(tr: Translator, claim_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(tr("claim.approve"), callback_data=f"cl:ok:{claim_id}"),
                InlineKeyboardButton(tr("claim.refuse"), callback_data=f"cl:no:{claim_id}"),
            ]
        ]
    )


def claim_card(context: Context, tr: Translator, claim: ClaimView) -> str:
    points = context.services.rules.points.activities.get(claim.activity, 0)
    return tr(
        "claim.card",
        id=claim.id,
        name=claim.person_name,
        village=claim.village_name,
        activity=activity_name(tr, claim.activity),
        points=points,
        text=claim.text,
        when=stamp(context.services, claim.created_at),
    )


def _decision_line(context: Context, tr: Translator, claim: ClaimView) -> str:
    if claim.status == claims.APPROVED:
        return tr("claim.decided.approved", who=claim.decided_by_name or "-")
    return tr(
        "claim.decided.refused", who=claim.decided_by_name or "-", reason=claim.refusal_reason or ""
    )


async def claim_command(update: Update, context: Context) -> None:
    actor = context.actor
    chat = update.effective_chat
    if actor is None or chat is None:
        return
    if not is_private(update):
        await reply(update, context, "common.private_only", command="/claim")
        return
    async with context.services.db.begin() as session:
        village = await claims.can_claim(session, actor.person_id)
        if not isinstance(village, ClaimRefusal):
            await drafts.start(
                session, actor.person_id, DRAFT_CLAIM, "type", {}, context.services.now()
            )
    if isinstance(village, ClaimRefusal):
        await reply(update, context, f"claim.refusal.{village.value}")
        return
    _ = context._
    buttons = [
        InlineKeyboardButton(
            _("claim.activity_button", activity=activity_name(_, key), points=n),
            callback_data=f"cl:t:{key}",
        )
        for key, n in context.services.rules.points.activities.items()
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)] + [_cancel_row(context)]
    await context.bot.send_message(
        chat.id, _("claim.ask_type", village=village[1]), reply_markup=InlineKeyboardMarkup(rows)
    )


async def _save(context: Context, step: str, data: dict[str, object]) -> None:
    actor = context.actor
    assert actor is not None
    async with context.services.db.begin() as session:
        await drafts.save(session, actor.person_id, step, data, context.services.now())


async def on_draft_message(
    update: Update, context: Context, draft: DraftView, message: Message
) -> None:
    """A private message while a claim (or a cadre's refusal reason) is being written."""
    if draft.kind == DRAFT_REFUSAL:
        await _refusal_reason(update, context, draft, message)
        return
    if draft.step == "type":
        await reply(update, context, "draft.use_buttons")
    elif draft.step == SENT:  # submitted; telling the cadres failed, the update runs again
        await _tell_submitted(update, context, int(draft.data["claim_id"]))
    elif draft.step == "photo":
        photo, problem = photo_of(message)
        if problem is not None:
            await reply(update, context, problem)
            return
        if photo is None:
            await reply(update, context, "claim.need_photo")
            return
        data = dict(draft.data)
        data["photo"] = [photo.file_id, photo.file_unique_id]
        await _save(context, "text", data)
        await message.reply_text(
            context._("claim.ask_text"), reply_markup=InlineKeyboardMarkup([_cancel_row(context)])
        )
    else:  # text
        text = " ".join((message.text or "").split())
        if not text:
            await reply(update, context, "claim.need_text")
        elif len(text) > MAX_TEXT:
            await reply(update, context, "claim.too_long", n=MAX_TEXT)
        else:
            await _submit(update, context, draft, text)


async def _submit(update: Update, context: Context, draft: DraftView, text: str) -> None:
    actor = context.actor
    assert actor is not None
    services = context.services
    file_id, unique_id = draft.data["photo"]
    async with services.db.begin() as session:
        result = await claims.submit_claim(
            session,
            policy_of(services),
            actor.person_id,
            str(draft.data.get("activity")),
            PhotoIn(str(file_id), str(unique_id)),
            text,
            now=services.now(),
        )
        if isinstance(result, ClaimView):
            # The draft waits as "sent" until the volunteer and the cadres are told: if that
            # fails, the update runs again and goes on telling them (one claim, not two).
            sent = stamped({"claim_id": result.id})
            await drafts.save(session, actor.person_id, SENT, sent, services.now())
        else:  # the person's role or village changed: done
            await drafts.finish(session, actor.person_id)
    if isinstance(result, ClaimRefusal):
        await reply(update, context, f"claim.refusal.{result.value}")
        return
    await _tell_submitted(update, context, result.id)


async def _tell_submitted(update: Update, context: Context, claim_id: int) -> None:
    """The volunteer gets the claim's number; the village's cadres, the claim to decide."""
    actor = context.actor
    assert actor is not None
    services = context.services
    async with services.db.begin() as session:
        claim = await claims.claim_view(session, claim_id)
        cadres = (
            await claims.cadres_of(session, claim.village_id, besides=actor.person_id)
            if claim is not None
            else []
        )
    if claim is not None:
        _ = context._
        await reply(
            update,
            context,
            "claim.submitted",
            id=claim.id,
            activity=activity_name(_, claim.activity),
            village=claim.village_name,
        )
        reached = 0
        for cadre in cadres:
            tr = services.i18n.translator(cadre.locale)
            reached += await notify(
                context,
                cadre.telegram_id,
                tr("claim.new") + "\n" + claim_card(context, tr, claim),
                decision_keyboard(tr, claim.id),
                photos=[claim.photo_file_id],
            )
        if not reached:
            await reply(update, context, "claim.cadre_unreachable")
    async with services.db.begin() as session:
        await drafts.finish(session, actor.person_id)


async def _edit(update: Update, text: str) -> None:
    query = update.callback_query
    assert query is not None
    try:
        await query.edit_message_text(text, reply_markup=None)
    except BadRequest as exc:  # the same text twice: nothing to change
        if "not modified" not in str(exc):
            raise


async def claim_button(update: Update, context: Context) -> None:
    query = update.callback_query
    actor = context.actor
    if query is None or query.data is None or actor is None:
        return
    verb, _sep, arg = query.data.removeprefix("cl:").partition(":")
    if verb in ("t", "x"):
        await _draft_button(update, context, verb, arg)
        return
    claim_id = parse_id(arg)
    if verb not in ("ok", "no") or claim_id is None:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    if verb == "ok":
        await _approve(update, context, claim_id)
    else:
        await _ask_reason(update, context, claim_id)


async def _draft_button(update: Update, context: Context, verb: str, arg: str) -> None:
    query = update.callback_query
    actor = context.actor
    assert query is not None and actor is not None and query.message is not None
    async with context.services.db.begin() as session:
        draft = await drafts.current(session, actor.person_id)
    if draft is None or draft.kind not in DRAFT_KINDS:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    if verb == "x":
        async with context.services.db.begin() as session:
            await drafts.finish(session, actor.person_id)
        await query.answer()
        await context.bot.send_message(query.message.chat.id, context._("draft.cancelled"))
        return
    if draft.step != "type" or arg not in context.services.rules.points.activities:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    await _save(context, "photo", {"activity": arg})
    await query.answer()
    await context.bot.send_message(
        query.message.chat.id,
        context._("claim.ask_photo", activity=activity_name(context._, arg)),
        reply_markup=InlineKeyboardMarkup([_cancel_row(context)]),
    )


def _refusal_text(context: Context, result: ClaimRefusal | Decided) -> str:
    if isinstance(result, Decided):
        return context._(
            f"claim.already.{result.claim.status}", who=result.claim.decided_by_name or "-"
        )
    return context._(f"claim.refusal.{result.value}")


async def _approve(update: Update, context: Context, claim_id: int) -> None:
    query = update.callback_query
    actor = context.actor
    assert query is not None and actor is not None
    services = context.services
    async with services.db.begin() as session:
        result = await claims.approve_claim(
            session,
            policy_of(services),
            claim_id,
            actor.person_id,
            now=services.now(),
            update_id=this_update(),  # run again, it finds its approval and tells the volunteer
        )
    if not isinstance(result, tuple):
        await query.answer(_refusal_text(context, result), show_alert=True)
        if isinstance(result, Decided):
            await _edit(
                update,
                claim_card(context, context._, result.claim)
                + "\n"
                + _decision_line(context, context._, result.claim),
            )
        return
    claim, change = result
    await query.answer(context._("claim.approved_toast", id=claim.id))
    await _edit(
        update,
        claim_card(context, context._, claim) + "\n" + _decision_line(context, context._, claim),
    )
    await _tell_volunteer(context, claim, change)


async def _tell_volunteer(context: Context, claim: ClaimView, change: Change | None) -> None:
    tr = context.services.i18n.translator(claim.person_locale)
    if change is None:
        text = tr(
            "claim.refused_notice",
            id=claim.id,
            activity=activity_name(tr, claim.activity),
            who=claim.decided_by_name or "-",
            reason=claim.refusal_reason or "",
        )
    else:
        text = tr(
            "claim.approved_notice",
            id=claim.id,
            activity=activity_name(tr, claim.activity),
            who=claim.decided_by_name or "-",
            balance=change.balance,
        )
        text += "\n" + entry_line(context.services, tr, change.entry)
    await notify(context, claim.person_telegram_id, text)


async def _ask_reason(update: Update, context: Context, claim_id: int) -> None:
    query = update.callback_query
    actor = context.actor
    assert query is not None and actor is not None
    async with context.services.db.begin() as session:
        checked = await claims.precheck(session, claim_id, actor.person_id)
        if isinstance(checked, ClaimView):
            await drafts.start(
                session,
                actor.person_id,
                DRAFT_REFUSAL,
                "reason",
                {"claim_id": claim_id},
                context.services.now(),
            )
    if not isinstance(checked, ClaimView):
        await query.answer(_refusal_text(context, checked), show_alert=True)
        return
    asked = await notify(context, actor.telegram_id, context._("claim.ask_reason", id=claim_id))
    if not asked:
        async with context.services.db.begin() as session:
            await drafts.finish(session, actor.person_id)
        await query.answer(
            context._("reason.open_private", bot=context.bot.username), show_alert=True
        )
        return
    await query.answer(context._("reason.asked_privately"))


async def _refusal_reason(
    update: Update, context: Context, draft: DraftView, message: Message
) -> None:
    actor = context.actor
    assert actor is not None
    reason = " ".join((message.text or "").split())
    if not reason:
        await reply(update, context, "report.need_text")
        return
    if len(reason) > MAX_TEXT:
        await reply(update, context, "claim.too_long", n=MAX_TEXT)
        return
    claim_id = int(draft.data["claim_id"])
    services = context.services
    async with services.db.begin() as session:
        result = await claims.refuse_claim(
            session, claim_id, actor.person_id, reason, now=services.now(), update_id=this_update()
        )
    # The draft is finished last: if telling fails, this update runs again, finds the draft
    # and the refusal it made (keyed by the update), and tells them then.
    if not isinstance(result, ClaimView):
        await message.reply_text(_refusal_text(context, result))
    else:
        await reply(update, context, "claim.refused_done", id=claim_id)
        await _tell_volunteer(context, result, None)
    async with services.db.begin() as session:
        await drafts.finish(session, actor.person_id)


async def claims_command(update: Update, context: Context) -> None:
    """A cadre's waiting claims, each with its buttons."""
    actor = context.actor
    if actor is None:
        return
    if not actor.has(Role.cadre):
        await reply(update, context, "claims.not_cadre")
        return
    if not is_private(update):
        await reply(update, context, "common.private_only", command="/claims")
        return
    async with context.services.db.begin() as session:
        waiting = await claims.pending_for(session, actor.person_id)
    if not waiting:
        await reply(update, context, "claims.none")
        return
    await reply(update, context, "claims.title", n=len(waiting))
    for claim in waiting[:LIST_LIMIT]:
        await notify(
            context,
            actor.telegram_id,
            claim_card(context, context._, claim),
            decision_keyboard(context._, claim.id),
            photos=[claim.photo_file_id],
        )


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("claim", claim_command))
    app.add_handler(CommandHandler("claims", claims_command))
    app.add_handler(CallbackQueryHandler(claim_button, pattern=r"^cl:"))
