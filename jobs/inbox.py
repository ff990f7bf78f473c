"""Forget inbox updates done a few days ago (see `bot.services.inbox.purge_done` for why a few
days is enough); parked ones stay until an admin replays them."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from telegram.ext import Application

from bot.context import Context
from bot.services import inbox
from models.base import utcnow

log = logging.getLogger(__name__)
KEEP_DONE = timedelta(days=3)
RUN_EVERY_S = 3600.0


async def purge_inbox(context: Context) -> None:
    services = context.services
    async with services.db.begin() as session:
        removed = await inbox.purge_done(session, before=utcnow() - KEEP_DONE)
    if removed:
        log.info("inbox: forgot %d updates done more than %s ago", removed, KEEP_DONE)


def register(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    if app.job_queue is not None:
        app.job_queue.run_repeating(purge_inbox, RUN_EVERY_S, first=60.0, name="inbox-purge")
