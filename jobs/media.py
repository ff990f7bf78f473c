"""Photos into the content-addressed media store, in the background.

A report is answered before its photos are fetched; this job then downloads every photo not yet
stored (within Telegram's 20 MB bot limit). A failed download stays pending and is tried again
on the next run, so a restart or a network fault loses nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram.error import TelegramError
from telegram.ext import Application

from bot.context import Context
from bot.services import media
from bot.services.media import TELEGRAM_DOWNLOAD_LIMIT

log = logging.getLogger(__name__)
RUN_EVERY_S = 60.0
NAME = "media-download"


async def download_pending(context: Context) -> None:
    services = context.services
    store = services.media
    async with services.db.begin() as session:
        pending = await media.pending_downloads(session)
    for item in pending:
        if (item.size or 0) > TELEGRAM_DOWNLOAD_LIMIT:
            async with services.db.begin() as session:
                await media.mark_unavailable(session, item.photo_id)
            continue
        try:
            file = await context.bot.get_file(item.file_id)
            if (file.file_size or 0) > TELEGRAM_DOWNLOAD_LIMIT:
                raise ValueError("over the 20 MB limit")
            data = bytes(await file.download_as_bytearray())
        except ValueError as exc:
            log.warning("photo %s cannot be kept: %s", item.photo_id, exc)
            async with services.db.begin() as session:
                await media.mark_unavailable(session, item.photo_id)
            continue
        except TelegramError as exc:  # tried again next time
            log.info("photo %s not downloaded yet: %s", item.photo_id, exc)
            continue
        digest = store.put(data)
        async with services.db.begin() as session:
            await media.mark_stored(session, item.photo_id, digest, len(data))


def soon(context: Context) -> None:
    """Run the download now (after a new report), unless a run is already queued."""
    queue = context.job_queue
    if queue is not None and not queue.get_jobs_by_name(f"{NAME}-soon"):
        queue.run_once(download_pending, 0.5, name=f"{NAME}-soon")  # type: ignore[arg-type]


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    if app.job_queue is not None:
        app.job_queue.run_repeating(download_pending, RUN_EVERY_S, first=2.0, name=NAME)
