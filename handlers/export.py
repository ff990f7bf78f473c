"""/export [window]: the ledger (台账) as an Excel workbook, for admins and leaders, in private.

A long export shows its progress by editing one message as the sheets are built.
"""

from __future__ import annotations

import asyncio
import time

from telegram import Message, Update
from telegram.error import BadRequest
from telegram.ext import Application, CommandHandler

from bot.context import Context
from bot.services import ledger
from bot.services.roles import Role
from handlers.common import is_group, reply
from handlers.ranking import window_from_args
from handlers.ranking_views import formula_text, window_label

EDIT_EVERY_S = 1.0  # a progress edit at most this often (Telegram limits edits like messages)


class ProgressMessage:
    """One message edited as the export goes; quiet between edits."""

    def __init__(self, message: Message, context: Context, window: str) -> None:
        self.message = message
        self.context = context
        self.window = window
        self.last_edit = time.monotonic()
        self.last_text = message.text or ""

    async def show(self, stage: str, done: int, total: int, *, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_edit < EDIT_EVERY_S:
            return
        await self.edit(
            self.context._(
                "export.progress",
                window=self.window,
                stage=self.context._(f"export.stage.{stage}"),
                done=done,
                total=total,
            )
        )

    async def edit(self, text: str) -> None:
        if text == self.last_text:
            return
        try:
            await self.message.edit_text(text)
        except BadRequest as exc:
            if "not modified" not in str(exc):
                raise
        self.last_text, self.last_edit = text, time.monotonic()


async def export_command(update: Update, context: Context) -> None:
    message = update.effective_message
    actor = context.actor
    if actor is None or message is None:
        return
    if not actor.has(Role.admin, Role.leader):
        await reply(update, context, "export.not_allowed")
        return
    if is_group(update):
        await reply(update, context, "export.private_only")
        return
    window = await window_from_args(update, context)
    if window is None:
        return
    services = context.services
    _ = context._
    label = window_label(_, window)
    now = services.now()
    as_of = services.local(now).strftime("%Y-%m-%d %H:%M")
    request = ledger.ExportRequest(
        window=window,
        as_of=now,
        zone=services.settings.zone,
        rules=services.rules,
        media=services.media,
        tr=_,
        locale=_.locale,
        ranking_notes=[
            _(
                "export.note.window",
                window=label,
                first=window.first.isoformat(),
                last=window.last.isoformat(),
                as_of=as_of,
            ),
            formula_text(_, services.rules.ranking),
        ],
    )
    progress = ProgressMessage(
        await message.reply_text(
            _("export.progress", window=label, stage=_("export.stage.problems"), done=0, total="…")
        ),
        context,
        label,
    )
    sheets: list[ledger.Sheet] = []
    for builder in ledger.SHEET_BUILDERS:
        async with services.db.begin() as session:
            sheet = await builder(session, request, progress.show)
        if sheet is not None:
            sheets.append(sheet)
    await progress.show("writing", len(sheets), len(sheets), force=True)
    data = await asyncio.to_thread(ledger.workbook_bytes, sheets, services.settings.zone)
    stamp = (
        window.first.isoformat()
        if window.first == window.last
        else (f"{window.first.isoformat()}_{window.last.isoformat()}")
    )
    await message.reply_document(
        data,
        filename=f"greengrid-{_('export.file_prefix')}-{stamp}.xlsx",
        caption=_("export.caption", window=label, as_of=as_of),
    )
    problems = len(sheets[0].rows) if sheets else 0
    await progress.edit(_("export.done", window=label, problems=problems, sheets=len(sheets)))


def register(app: Application) -> None:  # type: ignore[type-arg]
    app.add_handler(CommandHandler("export", export_command))
