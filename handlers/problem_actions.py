"""The buttons on a problem card: category, assign, reject, submit, verify, extensions.

Each tap becomes one call on the domain's state machine; a refused tap is answered with the
reason and changes nothing. Whoever the change concerns is told, in their own language.
"""

from __future__ import annotations

from datetime import timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler

from bot.context import Context
from bot.receiving.processor import current_attempt
from bot.services import chats, drafts, org, people, problems
from bot.services import points as points_ledger
from bot.services.chats import binding_of
from bot.services.problem_machine import Action, Refusal
from bot.services.problems import ProblemCard, ProblemView
from bot.services.roles import AreaKind, Role, may_view_problem
from handlers.common import parse_id
from handlers.points_views import entry_line, policy_of
from handlers.problem_views import (
    card_text,
    category_name,
    check_keyboard,
    day,
    extension_keyboard,
    lead_department,
    liaison_keyboard,
    notify,
    report_keyboard,
)
from jobs import media

EXTENSION_DAYS = (3, 7, 15)
REJECT_PRESETS = ("reject.preset.not_ours", "reject.preset.duplicate", "reject.preset.no_problem")
# Actions that need a typed reason, and the draft step that collects it.
REASON_ACTIONS = {"rej": Action.reject, "no": Action.fail_check, "exn": Action.refuse_extension}


async def load_card(context: Context, code: str) -> ProblemCard | None:
    async with context.services.db.begin() as session:
        return await problems.problem_card(session, code, context.services.now())


async def make_transition(
    context: Context, code: str, action: Action, **values: object
) -> ProblemView | Refusal | None:
    actor = context.actor
    assert actor is not None
    attempt = current_attempt()  # a run again of this update finds its change made
    async with context.services.db.begin() as session:
        return await problems.transition(
            session,
            code,
            action,
            actor.person_id,
            now=context.services.now(),
            points=policy_of(context.services),
            update_id=attempt.update_id if attempt is not None else None,
            **values,  # type: ignore[arg-type]
        )


def refusal_text(context: Context, result: Refusal | None, code: str) -> str:
    if result is None:
        return context._("problem.unknown_code", code=code)
    return context._(f"refusal.{result.value}", code=code)


async def announce(context: Context, code: str, action: Action, reason: str | None = None) -> None:
    """Tell everyone the change concerns: the reporter always; then by action the liaisons,
    the checkers, the admins, and the group the problem came from."""
    services = context.services
    async with services.db.begin() as session:
        card = await problems.problem_card(session, code, services.now())
        if card is None:
            return
        subject = card.problem.subject_id
        liaisons = (
            await problems.people_with_role(session, Role.liaison, subject) if subject else []
        )
        admins = await problems.people_with_role(session, Role.admin)
        inspectors = (
            await problems.people_with_role(session, Role.inspector, subject) if subject else []
        )
        reporter = card.problem.reporter_telegram_id
        locales = await people.locales_of(session, {reporter, *liaisons, *admins, *inspectors})
        earned = await points_ledger.points_of_transition(
            session, card.problem.id, card.problem.reporter_id, action
        )
        subject_groups = await chats.groups_bound_to(session, subject) if subject else []

    notice = f"notice.{action.value}"
    extra = {
        "code": code,
        "reason": reason or "",
        "subject": card.problem.subject_name or "",
        "deadline": day(context, card.problem.deadline),
    }
    for tid in liaisons if action in (Action.assign, Action.fail_check) else []:
        t = services.i18n.translator(locales.get(tid))
        await notify(
            context,
            tid,
            t(notice, **extra) + "\n\n" + card_text(context, card, t),
            liaison_keyboard(t, code),
            photos=card.before,
        )
    if action in (
        Action.approve_extension,
        Action.refuse_extension,
        Action.pass_check,
        Action.reject,
    ):
        for tid in liaisons:
            t = services.i18n.translator(locales.get(tid))
            await notify(context, tid, t(notice, **extra))
    if action is Action.submit:
        for tid in sorted(set(admins) | set(inspectors)):
            t = services.i18n.translator(locales.get(tid))
            await notify(
                context,
                tid,
                t(notice, **extra) + "\n\n" + card_text(context, card, t),
                check_keyboard(t, code),
                photos=card.after,
            )
    if action is Action.request_extension:
        extra["deadline"] = day(context, card.problem.extension_until)
        for tid in admins:
            t = services.i18n.translator(locales.get(tid))
            await notify(
                context,
                tid,
                t(notice, **extra) + "\n\n" + card_text(context, card, t),
                extension_keyboard(t, code),
            )
    t = services.i18n.translator(locales.get(reporter))
    told = t(f"reporter.{action.value}", **extra)
    if earned is not None:  # the points this transition brought or took back
        told += "\n" + t("points.notice", balance=earned.balance)
        told += "\n" + entry_line(services, t, earned.entry)
    await notify(context, reporter, told)
    if action not in (Action.assign, Action.reject, Action.pass_check):
        return
    # The group the report came from, and the subject's own groups (DESIGN: the liaisons get
    # the card privately and in the group); a group that never saw the report gets the card.
    default = services.i18n.translator(services.settings.default_locale)
    line = default(f"group.{action.value}", **extra)
    department = lead_department(context, card.problem.category, default)
    if action is Action.assign and department:
        line += "\n" + default("card.lead_department", department=department)
    source = card.problem.source_chat_id
    if source is not None and source < 0:
        await notify(context, source, line)
    for chat_id in subject_groups:
        if chat_id == source:
            continue
        if action is Action.assign:
            text = line + "\n\n" + card_text(context, card, default)
            await notify(context, chat_id, text, photos=card.before)
        else:
            await notify(context, chat_id, line)


async def _edit(
    context: Context, update: Update, text: str, markup: InlineKeyboardMarkup | None
) -> None:
    query = update.callback_query
    assert query is not None
    try:
        await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as exc:  # the same text twice (a double tap): nothing to change
        if "not modified" not in str(exc):
            raise


async def _refresh(context: Context, update: Update, code: str) -> None:
    card = await load_card(context, code)
    if card is not None:
        await _edit(context, update, card_text(context, card), None)


def _is_admin(context: Context) -> bool:
    return context.actor is not None and context.actor.has(Role.admin)


async def _assign_menu(context: Context, update: Update, code: str, args: list[str]) -> None:
    query = update.callback_query
    assert query is not None
    services = context.services
    if not args:  # choose the subject; the village's or the group's subject first
        async with services.db.begin() as session:
            subjects = await org.areas_of_kind(session, AreaKind.subject)
            card = await problems.problem_card(session, code, services.now())
            village = (
                await org.area_by_id(session, card.problem.village_id)
                if card and card.problem.village_id
                else None
            )
            chat = query.message.chat.id if query.message else 0
            bound = await binding_of(session, chat)
        first = (
            village.parent_id
            if village
            else (bound.area_id if bound and bound.area_kind is AreaKind.subject else None)
        )
        subjects.sort(key=lambda a: (a.id != first, a.code))
        rows = [
            [
                InlineKeyboardButton(
                    ("✓ " if a.id == first else "") + a.name, callback_data=f"p:asg:{code}:{a.id}"
                )
            ]
            for a in subjects
        ]
        await query.answer()
        await _edit(
            context,
            update,
            context._("assign.choose_subject", code=code),
            InlineKeyboardMarkup(rows),
        )
        return
    if len(args) == 1:
        async with services.db.begin() as session:
            problem = await problems.problem_by_code(session, code)
            category = services.rules.category(problem.category) if problem else None
            subject = await org.area_by_id(session, _id(args[0]))
        if subject is None or subject.kind is not AreaKind.subject:  # forged or outdated
            await query.answer(refusal_text(context, Refusal.needs_subject, code), show_alert=True)
            return
        default = category.default_deadline_days if category else 15
        days = [default] + [d for d in services.rules.deadlines.choices_days if d != default]
        buttons = [
            InlineKeyboardButton(
                context._("assign.days_default", n=d)
                if d == default
                else context._("assign.days", n=d),
                callback_data=f"p:asg:{code}:{args[0]}:{d}",
            )
            for d in days
        ]
        await query.answer()
        await _edit(
            context,
            update,
            context._("assign.choose_deadline", code=code),
            InlineKeyboardMarkup([buttons[:2], buttons[2:]]),
        )
        return
    subject_id, n_days = _id(args[0]), int(args[1])
    if not 1 <= n_days <= 365:
        raise ValueError(n_days)
    deadline = problems.deadline_after(services.now(), n_days, services.settings.zone)
    result = await make_transition(
        context, code, Action.assign, subject_id=subject_id, deadline=deadline
    )
    await _after(context, update, code, Action.assign, result)


def _id(text: str) -> int:
    """An id from button data; forged data (not a 64-bit number) is refused as stale."""
    value = parse_id(text)
    if value is None:
        raise ValueError(text)
    return value


async def _after(
    context: Context,
    update: Update,
    code: str,
    action: Action,
    result: ProblemView | Refusal | None,
    reason: str | None = None,
) -> None:
    query = update.callback_query
    assert query is not None
    if not isinstance(result, ProblemView):
        await query.answer(refusal_text(context, result, code), show_alert=True)
        return
    await query.answer(context._(f"done.{action.value}", code=code))
    await _refresh(context, update, code)
    media.soon(context)
    await announce(context, code, action, reason)


async def ask_reason(context: Context, update: Update, code: str, verb: str) -> None:
    """Typed reasons are collected privately: the draft waits for the next text."""
    query = update.callback_query
    actor = context.actor
    assert query is not None and actor is not None
    action = REASON_ACTIONS[verb]
    async with context.services.db.begin() as session:
        verdict = await problems.precheck(session, code, action, actor.person_id)
        if verdict is True:
            await drafts.start(
                session,
                actor.person_id,
                "reason",
                "text",
                {"code": code, "action": action.value},
                context.services.now(),
            )
    if verdict is not True:
        await query.answer(refusal_text(context, verdict or None, code), show_alert=True)
        return
    asked = await notify(
        context, actor.telegram_id, context._(f"reason.ask.{action.value}", code=code)
    )
    if not asked:
        async with context.services.db.begin() as session:
            await drafts.finish(session, actor.person_id)
        await query.answer(
            context._("reason.open_private", bot=context.bot.username), show_alert=True
        )
        return
    await query.answer(context._("reason.asked_privately"))


async def _reject_menu(context: Context, update: Update, code: str, args: list[str]) -> None:
    query = update.callback_query
    assert query is not None
    if not _is_admin(context):
        await query.answer(refusal_text(context, Refusal.not_allowed, code), show_alert=True)
        return
    if not args:
        rows = [
            [InlineKeyboardButton(context._(key), callback_data=f"p:rej:{code}:{i}")]
            for i, key in enumerate(REJECT_PRESETS)
        ]
        rows.append(
            [InlineKeyboardButton(context._("reject.other"), callback_data=f"p:rej:{code}:x")]
        )
        await query.answer()
        await _edit(
            context, update, context._("reject.choose", code=code), InlineKeyboardMarkup(rows)
        )
        return
    if args[0] == "x":
        await ask_reason(context, update, code, "rej")
        return
    # The reason is kept in the deployment's language: it is part of the record.
    default = context.services.i18n.translator(context.services.settings.default_locale)
    reason = default(REJECT_PRESETS[int(args[0])])
    result = await make_transition(context, code, Action.reject, reason=reason)
    await _after(context, update, code, Action.reject, result, reason)


async def _extension_menu(context: Context, update: Update, code: str, args: list[str]) -> None:
    query = update.callback_query
    actor = context.actor
    assert query is not None and actor is not None
    if not args:
        async with context.services.db.begin() as session:
            verdict = await problems.precheck(
                session, code, Action.request_extension, actor.person_id
            )
        if verdict is not True:
            await query.answer(refusal_text(context, verdict or None, code), show_alert=True)
            return
        buttons = [
            InlineKeyboardButton(context._("assign.days", n=d), callback_data=f"p:ext:{code}:{d}")
            for d in EXTENSION_DAYS
        ]
        await query.answer()
        await context.bot.send_message(
            actor.telegram_id,
            context._("extension.choose", code=code),
            reply_markup=InlineKeyboardMarkup([buttons]),
        )
        return
    n_days = int(args[0])
    if n_days not in EXTENSION_DAYS:
        raise ValueError(n_days)
    async with context.services.db.begin() as session:
        problem = await problems.problem_by_code(session, code)
        current = problem.deadline if problem else None
    if current is None:
        await query.answer(refusal_text(context, Refusal.wrong_status, code), show_alert=True)
        return
    result = await make_transition(
        context, code, Action.request_extension, deadline=current + timedelta(days=n_days)
    )
    await _after(context, update, code, Action.request_extension, result)


async def begin_rectification(context: Context, code: str) -> None:
    """A liaison starts submitting a rectification: photos first, then a note (privately)."""
    actor = context.actor
    assert actor is not None
    async with context.services.db.begin() as session:
        verdict = await problems.precheck(session, code, Action.submit, actor.person_id)
        if verdict is True:
            await drafts.start(
                session,
                actor.person_id,
                "rectify",
                "photos",
                {"code": code, "photos": []},
                context.services.now(),
            )
    if verdict is not True:
        await notify(context, actor.telegram_id, refusal_text(context, verdict or None, code))
        return
    await notify(
        context,
        actor.telegram_id,
        context._("rectify.ask_photos", code=code),
        photos_done_keyboard(context),
    )


def photos_done_keyboard(context: Context) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(context._("draft.done"), callback_data="d:done"),
                InlineKeyboardButton(context._("draft.cancel"), callback_data="d:cancel"),
            ]
        ]
    )


async def show_card(context: Context, code: str) -> None:
    """The card privately, with the buttons this person may use on it now."""
    actor = context.actor
    assert actor is not None
    card = await load_card(context, code)
    if card is None:
        await notify(context, actor.telegram_id, context._("problem.unknown_code", code=code))
        return
    if not may_view_problem(
        actor.role_set, is_reporter=card.problem.reporter_id == actor.person_id
    ):
        await notify(context, actor.telegram_id, context._("issue.not_allowed", code=code))
        return
    markup = None
    async with context.services.db.begin() as session:
        if await problems.precheck(session, code, Action.submit, actor.person_id) is True:
            markup = liaison_keyboard(context._, code)
        elif await problems.precheck(session, code, Action.pass_check, actor.person_id) is True:
            markup = check_keyboard(context._, code)
    await notify(context, actor.telegram_id, card_text(context, card), markup)


async def _start_rectification(context: Context, update: Update, code: str) -> None:
    query = update.callback_query
    actor = context.actor
    assert query is not None and actor is not None
    await query.answer()
    await begin_rectification(context, code)


async def _tell_reporter_of_category(context: Context, problem: ProblemView) -> None:
    """Someone else (an admin) changed the category: the reporter is told, as of every change."""
    async with context.services.db.begin() as session:
        locales = await people.locales_of(session, {problem.reporter_telegram_id})
    t = context.services.i18n.translator(locales.get(problem.reporter_telegram_id))
    category = category_name(context, problem.category, t)
    await notify(
        context,
        problem.reporter_telegram_id,
        t("reporter.categorise", code=problem.code, category=category),
    )


async def problem_button(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or query.data is None or context.actor is None:
        return
    parts = query.data.split(":")
    if len(parts) < 3:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    verb, code, args = parts[1], parts[2], parts[3:]
    try:
        if verb == "cat" and args:
            if context.services.rules.category(args[0]) is None:
                raise ValueError(args[0])
            async with context.services.db.begin() as session:
                problem = await problems.problem_by_code(session, code)
                was = problem.category if problem else None
                result = await problems.set_category(
                    session, code, args[0], context.actor.person_id, now=context.services.now()
                )
            if not isinstance(result, ProblemView):
                await query.answer(refusal_text(context, result, code), show_alert=True)
                return
            await query.answer()
            if result.category != was and result.reporter_id != context.actor.person_id:
                await _tell_reporter_of_category(context, result)
            card = await load_card(context, code)
            if card is not None:
                await _edit(
                    context,
                    update,
                    card_text(context, card),
                    report_keyboard(context, context._, code, ask_category=False),
                )
        elif verb == "asg":
            if not _is_admin(context):
                await query.answer(
                    refusal_text(context, Refusal.not_allowed, code), show_alert=True
                )
                return
            await _assign_menu(context, update, code, args)
        elif verb == "rej":
            await _reject_menu(context, update, code, args)
        elif verb == "show":
            await query.answer()
            await show_card(context, code)
        elif verb == "sub":
            await _start_rectification(context, update, code)
        elif verb == "ext":
            await _extension_menu(context, update, code, args)
        elif verb == "ok":
            result = await make_transition(context, code, Action.pass_check)
            await _after(context, update, code, Action.pass_check, result)
        elif verb == "exy":
            result = await make_transition(context, code, Action.approve_extension)
            await _after(context, update, code, Action.approve_extension, result)
        elif verb in ("no", "exn"):
            await ask_reason(context, update, code, verb)
        else:
            raise ValueError(verb)
    except (ValueError, IndexError):  # forged or outdated data
        await query.answer(context._("button.stale"), show_alert=True)


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CallbackQueryHandler(problem_button, pattern=r"^p:"))
