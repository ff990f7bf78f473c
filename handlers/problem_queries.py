"""/issue CODE: the card with its photos and history; /issues: open problems, with filters and
paging (`/issues overdue`, `/issues NH-DQ`, `/issues rectifying`)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Update
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, CommandHandler

from bot.context import Context
from bot.limits import split_text
from bot.services import org, problems
from bot.services.problem_machine import Status
from bot.services.problems import ProblemCard
from bot.services.roles import AreaKind, may_list_problems, may_view_problem
from handlers.common import parse_id, reply
from handlers.problem_actions import load_card
from handlers.problem_views import card_text, list_line

PER_PAGE = 10
MAX_PAGE = 100_000


async def issue_command(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None:
        return
    if not context.args:
        await reply(update, context, "issue.usage")
        return
    code = context.args[0].strip().upper()[:32]
    card = await load_card(context, code)
    if card is None:
        await reply(update, context, "problem.unknown_code", code=code)
        return
    if not may_view(context, card):
        await reply(update, context, "issue.not_allowed", code=code)
        return
    for label, photos in (("issue.before", card.before), ("issue.after", card.after)):
        if len(photos) > 1:
            media = [InputMediaPhoto(f) for f in photos[:10]]
            media[0] = InputMediaPhoto(photos[0], caption=context._(label))
            await message.reply_media_group(media)
        elif photos:
            await message.reply_photo(photos[0], caption=context._(label))
    # A long history (many rounds, long notes) goes in several messages, none over 4096.
    for piece in split_text(card_text(context, card, with_history=True)):
        await message.reply_text(piece)


async def _filters(context: Context, words: list[str]) -> tuple[dict[str, object], str] | None:
    """``/issues`` words into list filters, and a compact form for the paging buttons."""
    chosen: dict[str, object] = {}
    for word in words:
        lowered = word.lower()
        if lowered in ("overdue", context._("issues.word_overdue")):
            chosen["overdue_only"] = True
        elif lowered in {s.value for s in Status}:
            chosen["status"] = Status(lowered)
        else:
            async with context.services.db.begin() as session:
                area = await org.find_area(session, word)
            if area is None or area.kind is not AreaKind.subject:
                return None
            chosen["subject_id"] = area.id
    compact = ",".join(
        f"{k}={v.value if isinstance(v, Status) else v}" for k, v in sorted(chosen.items())
    )
    return chosen, compact


def _parse_compact(compact: str) -> dict[str, object]:
    chosen: dict[str, object] = {}
    for pair in filter(None, compact.split(",")):
        key, _, value = pair.partition("=")
        if key == "overdue_only":
            chosen[key] = True
        elif key == "status":
            chosen[key] = Status(value)
        elif key == "subject_id":
            subject_id = parse_id(value)
            if subject_id is None:
                raise ValueError(value)
            chosen[key] = subject_id
        else:
            raise ValueError(key)
    return chosen


async def _page(
    context: Context, chosen: dict[str, object], compact: str, page: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    async with context.services.db.begin() as session:
        lines, total = await problems.list_problems(
            session,
            now=context.services.now(),
            page=page,
            per_page=PER_PAGE,
            **chosen,  # type: ignore[arg-type]
        )
    if total == 0:
        return context._("issues.none"), None
    pages = (total + PER_PAGE - 1) // PER_PAGE
    if page >= pages:  # an old button, after problems were closed (or forged): the last page
        return await _page(context, chosen, compact, pages - 1)
    text = "\n".join(
        [context._("issues.title", total=total, page=page + 1, pages=pages)]
        + [list_line(context, line) for line in lines]
    )
    nav = []
    if page > 0:
        nav.append(
            InlineKeyboardButton(context._("page.prev"), callback_data=f"ls:{page - 1}:{compact}")
        )
    if page + 1 < pages:
        nav.append(
            InlineKeyboardButton(context._("page.next"), callback_data=f"ls:{page + 1}:{compact}")
        )
    return text, InlineKeyboardMarkup([nav]) if nav else None


def may_view(context: Context, card: ProblemCard) -> bool:
    actor = context.actor
    return actor is not None and may_view_problem(
        actor.role_set, is_reporter=card.problem.reporter_id == actor.person_id
    )


def _may_list(context: Context) -> bool:
    return context.actor is not None and may_list_problems(context.actor.role_set)


async def issues_command(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None:
        return
    if not _may_list(context):
        await reply(update, context, "issues.not_allowed")
        return
    parsed = await _filters(context, context.args or [])
    if parsed is None:
        await reply(update, context, "issues.usage")
        return
    text, markup = await _page(context, *parsed, 0)
    await message.reply_text(text, reply_markup=markup)


async def issues_page(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or query.data is None:
        return
    if not _may_list(context):
        await query.answer(context._("issues.not_allowed"), show_alert=True)
        return
    try:
        _, page_text, compact = query.data.split(":", 2)
        page = parse_id(page_text)
        chosen = _parse_compact(compact)
    except ValueError:
        page = None
    if page is None:
        await query.answer(context._("button.stale"), show_alert=True)
        return
    # A page past the end shows the last one: no need to count that far (nor overflow).
    text, markup = await _page(context, chosen, compact, max(0, min(page, MAX_PAGE)))
    await query.answer()
    try:
        await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as exc:
        if "not modified" not in str(exc):
            raise


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("issue", issue_command))
    app.add_handler(CommandHandler("issues", issues_command))
    app.add_handler(CallbackQueryHandler(issues_page, pattern=r"^ls:"))
