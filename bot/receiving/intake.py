"""Taking updates in: the long-polling loop, and the one step both ways of receiving share
(write to the inbox, then wake the processor).

Polling acknowledges an update by asking for the next ones with a higher ``offset``; this loop
asks again only after the batch is committed to the inbox. A process killed before that leaves
the batch unacknowledged, and Telegram hands it out again (the inbox ignores what it has).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from telegram import Update
from telegram.error import Conflict, InvalidToken, TelegramError
from telegram.ext import ExtBot

from bot.context import Services
from bot.receiving.metrics import Metrics
from bot.services import inbox
from models.base import utcnow

log = logging.getLogger(__name__)


class Intake:
    def __init__(self, services: Services, metrics: Metrics, wake: Callable[[], None]) -> None:
        self.services = services
        self.metrics = metrics
        self.wake = wake

    async def take(self, updates: Sequence[dict[str, Any]], *, via: str) -> list[int]:
        """Commit the updates to the inbox (raising if the database refuses, so the caller does
        not acknowledge them); returns the ids that were new."""
        async with self.services.db.begin() as session:
            new = await inbox.store(session, updates, via=via, now=utcnow())
        if new:
            self.metrics.received.labels(via).inc(len(new))
            self.wake()
        if len(new) < len(updates):
            self.metrics.redelivered.labels(via).inc(len(updates) - len(new))
        return new


class Poller:
    """getUpdates in a loop: store each batch, and only then move the offset past it."""

    def __init__(
        self,
        bot: ExtBot[Any],
        intake: Intake,
        *,
        timeout: int = 30,
        retry_base_s: float = 0.5,
        retry_cap_s: float = 30.0,
    ) -> None:
        self.bot = bot
        self.intake = intake
        self.timeout = timeout
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="polling")

    async def stop(self) -> None:
        """Stop at once: a batch fetched but not yet stored is simply fetched again next time."""
        self._stopping = True  # as well as the cancel, which a library may swallow
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        # No offset at first: Telegram starts from the oldest update not yet acknowledged,
        # whatever the inbox saw before (ids are not always increasing across a quiet week).
        offset: int | None = None
        failures = 0
        while not self._stopping:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=self.timeout, allowed_updates=Update.ALL_TYPES
                )
                if updates:
                    await self.intake.take([u.to_dict() for u in updates], via="polling")
                    offset = updates[-1].update_id + 1
                failures = 0
            except InvalidToken:
                log.critical("polling: Telegram refused the token; polling stops")
                raise
            except Exception as exc:
                failures += 1
                pause = min(self.retry_cap_s, self.retry_base_s * 2 ** min(failures - 1, 8))
                if isinstance(exc, Conflict):
                    log.error("polling: %s (another instance polls this bot?)", exc)
                elif isinstance(exc, TelegramError):
                    log.warning("polling: %s; again in %.1fs", exc, pause)
                else:  # the database refused the batch: it is not acknowledged
                    log.exception("polling: could not store updates; again in %.1fs", pause)
                await asyncio.sleep(pause)
