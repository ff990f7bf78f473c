"""Drains the outbox through the rate limiter: one long-running task per process.

Several processes may run one each on a shared database; claims keep them apart. Delivery is
at least once: a process killed between Telegram's answer and the row being marked sent leaves
that row (at most the messages in flight) to be sent again when its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import timedelta
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.context import Services
from bot.services import outbox
from bot.services.outbox import OutboxItem

log = logging.getLogger(__name__)


def _markup(payload: dict[str, Any]) -> InlineKeyboardMarkup | None:
    rows = payload.get("buttons")
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(text, callback_data=data) for text, data in row] for row in rows]
    )


class OutboxSender:
    def __init__(
        self,
        bot: Bot,
        services: Services,
        *,
        worker: str | None = None,
        batch: int = 200,
        lease: timedelta = timedelta(minutes=2),
        idle_s: float = 1.0,
    ) -> None:
        self.bot = bot
        self.services = services
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.batch = batch
        self.lease = lease
        self.idle_s = idle_s
        self.sent = 0
        self.gave_up = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New rows were written: look now rather than at the next idle tick."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _quiet_now(self) -> bool:
        rules = self.services.rules.schedules
        local = self.services.local(self.services.now()).time()
        return outbox.is_quiet(local, rules.quiet_start, rules.quiet_end)

    async def run_once(self) -> int:
        """Claim and send one batch; how many rows were handled."""
        now = self.services.now()
        async with self.services.db.begin() as session:
            items = await outbox.claim(
                session,
                self.worker,
                now=now,
                lease=self.lease,
                limit=self.batch,
                quiet_now=self._quiet_now(),
            )
        if items:
            by_chat: dict[int, list[OutboxItem]] = {}
            for item in items:
                by_chat.setdefault(item.chat_id, []).append(item)
            await asyncio.gather(*(self._deliver_in_order(queue) for queue in by_chat.values()))
        return len(items)

    async def _deliver_in_order(self, items: list[OutboxItem]) -> None:
        """One chat's rows in the order they were written (a chart, then its table). After a
        failure the rest wait: they stay claimed until their lease runs out."""
        for item in items:
            if not await self._deliver(item):
                return

    async def _send(self, item: OutboxItem) -> Message:
        payload = item.payload
        photo = payload.get("photo")
        if not photo and payload.get("photo_sha256"):
            # A picture the bot made (a chart) is kept in the media store; the row names it.
            photo = self.services.media.get(payload["photo_sha256"])
            if photo is None:
                raise BadRequest(f"media {payload['photo_sha256']} is not in the media store")
        if photo:
            return await self.bot.send_photo(
                item.chat_id,
                photo,
                caption=payload.get("text"),
                parse_mode=payload.get("parse_mode"),
                reply_markup=_markup(payload),
            )
        return await self.bot.send_message(
            item.chat_id,
            payload["text"],
            parse_mode=payload.get("parse_mode"),
            reply_markup=_markup(payload),
        )

    async def _deliver(self, item: OutboxItem) -> bool:
        """Send one row; whether it went."""
        try:
            message = await self._send(item)
        except (Forbidden, BadRequest) as exc:  # blocked, chat gone, never deliverable
            await self._failed(item, str(exc), retry=False)
            return False
        except TelegramError as exc:  # the limiter already retried: try again later
            await self._failed(item, str(exc), retry=True)
            return False
        else:
            async with self.services.db.begin() as session:
                await outbox.mark_sent(
                    session,
                    item.id,
                    self.worker,
                    now=self.services.now(),
                    message_id=message.message_id,
                )
            self.sent += 1
            return True

    async def _failed(self, item: OutboxItem, error: str, *, retry: bool) -> None:
        async with self.services.db.begin() as session:
            status = await outbox.mark_failed(
                session, item.id, self.worker, now=self.services.now(), error=error, retry=retry
            )
        if status == outbox.GAVE_UP:
            self.gave_up += 1
            log.warning("outbox %s to %s given up: %s", item.key, item.chat_id, error)
        else:
            log.info("outbox %s to %s will be retried: %s", item.key, item.chat_id, error)

    async def _run(self) -> None:
        while True:
            try:
                handled = await self.run_once()
            except Exception:  # a database hiccup must not end the sender
                log.exception("outbox sender failed; trying again shortly")
                handled = 0
            if handled:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_s)
