"""Albums: once no part has arrived for a moment, the album becomes one problem (or nothing,
if no caption carries the tag). A sweep at start and every half minute picks up albums whose
timer was lost to a restart."""

from __future__ import annotations

import logging
from typing import Any

from telegram.ext import Application

from bot.context import Context
from bot.services import intake

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 30.0


async def finish_albums(context: Context) -> None:
    from handlers.reports import create_group_report

    services = context.services
    async with services.db.begin() as session:
        quiet = await intake.quiet_albums(session, services.now())
    for chat_id, group in quiet:
        async with services.db.begin() as session:
            parts = await intake.album_parts(session, chat_id, group)
            if parts and not any(intake.has_report_tag(p.caption) for p in parts):
                await intake.mark_taken(session, chat_id, [p.message_id for p in parts])
                continue  # an album without the tag is no report
        if parts:
            # Taken in the same transaction that makes the problem: nothing lost in between.
            await create_group_report(context, chat_id, parts, take=True)


def schedule(context: Context, chat_id: int, media_group_id: str) -> None:
    """(Re)start the album's timer: each new part pushes the deadline back."""
    queue = context.job_queue
    if queue is None:
        return
    name = f"album:{chat_id}:{media_group_id}"
    for job in queue.get_jobs_by_name(name):
        job.schedule_removal()
    # PTB types a job's callback with its default context; ours is the typed subclass.
    queue.run_once(
        finish_albums,  # type: ignore[arg-type]
        intake.ALBUM_QUIET.total_seconds() + 0.2,
        name=name,
    )


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    if app.job_queue is not None:
        app.job_queue.run_repeating(finish_albums, SWEEP_EVERY_S, first=1.0, name="album-sweep")
