"""Photos into the content-addressed media store, in the background.

A report is answered before its photos are fetched; this job then downloads every photo not yet
stored (within Telegram's 20 MB bot limit), batch after batch until none is due. A network fault
ends the run and loses nothing: the next run tries again. A photo Telegram refuses (a wrong or
expired file id) waits longer after each refusal and is given up after a few; one too large is
given up at once. Either way it no longer holds up the photos reported after it.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from telegram.error import BadRequest, NetworkError, TelegramError
from telegram.ext import Application

from bot.context import Context
from bot.services import media
from bot.services.media import TELEGRAM_DOWNLOAD_LIMIT, PendingDownload

log = logging.getLogger(__name__)
RUN_EVERY_S = 60.0
NAME = "media-download"


class Failure(Enum):
    never = "never"  # the file can never be downloaded: give it up
    refused = "refused"  # Telegram said no to this file: wait, then try again a few times
    network = "network"  # nothing is wrong with the file: stop this run, try next time


def failure_of(exc: TelegramError) -> Failure:
    if isinstance(exc, BadRequest):  # a NetworkError subclass in PTB: check it first
        return Failure.never if "too big" in exc.message.lower() else Failure.refused
    if isinstance(exc, NetworkError):
        return Failure.network
    return Failure.refused  # e.g. a file path the server no longer knows (404)


async def _download(context: Context, item: PendingDownload) -> Failure | None:
    """Fetch one photo into the store; None when stored, else what went wrong."""
    services = context.services
    if (item.size or 0) > TELEGRAM_DOWNLOAD_LIMIT:
        failure: Failure | None = Failure.never
    else:
        try:
            file = await context.bot.get_file(item.file_id)
            if (file.file_size or 0) > TELEGRAM_DOWNLOAD_LIMIT:
                failure = Failure.never
            else:
                data = bytes(await file.download_as_bytearray())
                digest = services.media.put(data)
                async with services.db.begin() as session:
                    await media.mark_stored(session, item.photo_id, digest, len(data))
                return None
        except TelegramError as exc:
            failure = failure_of(exc)
            log.info("photo %s not downloaded (%s): %s", item.photo_id, failure.value, exc)
    async with services.db.begin() as session:
        if failure is Failure.never:
            await media.mark_unavailable(session, item.photo_id)
        elif failure is Failure.refused:
            await media.mark_refused(session, item.photo_id, services.now())
    return failure


async def download_pending(context: Context) -> None:
    services = context.services
    tried: set[int] = set()
    while True:
        async with services.db.begin() as session:
            due = await media.pending_downloads(session, services.now())
        batch = [item for item in due if item.photo_id not in tried]
        if not batch:
            return
        for item in batch:
            tried.add(item.photo_id)
            if await _download(context, item) is Failure.network:
                return


def soon(context: Context) -> None:
    """Run the download now (after a new report), unless a run is already queued."""
    queue = context.job_queue
    if queue is not None and not queue.get_jobs_by_name(f"{NAME}-soon"):
        queue.run_once(download_pending, 0.5, name=f"{NAME}-soon")  # type: ignore[arg-type]


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    if app.job_queue is not None:
        app.job_queue.run_repeating(download_pending, RUN_EVERY_S, first=2.0, name=NAME)
