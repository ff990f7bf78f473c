"""Drains the outbox through the rate limiter: one long-running task per process.

Several processes may run one each on a shared database; claims keep them apart, and a lease
renewed while the process lives hands a dead process's rows to the others.

Delivery is at least once. Telegram cannot be asked whether a message arrived, so a process
killed between Telegram's answer and the row being marked sent leaves that row to be sent again.
The window is kept small: at most ``max_in_flight`` rows are claimed at a time, sends are spaced
evenly rather than in bursts, and answered rows are marked at once by one marker, each batch of
answers that came in meanwhile in one short transaction (many writers taking turns on SQLite
would wait on each other's locks far longer).
A row is only ever sent twice if it was claimed and not yet marked when the process died.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, ChatMigrated, Forbidden, TelegramError

from bot.context import Services
from bot.services import outbox
from bot.services.outbox import OutboxItem
from models.base import utcnow

log = logging.getLogger(__name__)

# Called when Telegram says a chat can never be written to again (blocked, kicked, gone).
ChatGone = Callable[[int, str], Awaitable[None]]
# 30 messages a second is Telegram's overall limit: a few more in flight keep every slot busy,
# and a bound here bounds what a killed process can leave half-done.
MAX_IN_FLIGHT = 40
MARK_TRIES = 5  # a lost "sent" mark means a duplicate later: worth a few quick retries


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
        max_in_flight: int = MAX_IN_FLIGHT,
        lease: timedelta = timedelta(seconds=30),
        idle_s: float = 1.0,
        grace_s: float = 10.0,
        warmup_s: float = 0.0,
        spacing_s: float = 0.0,
        on_chat_gone: ChatGone | None = None,
    ) -> None:
        self.bot = bot
        self.services = services
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.max_in_flight = max_in_flight
        self.lease = lease
        self.idle_s = idle_s
        self.grace_s = grace_s
        # A process that just started cannot know what another (or its killed predecessor) sent
        # in the last second: waiting one overall window first keeps Telegram's limit anyway.
        self.warmup_s = warmup_s
        # Sends start at most one per ``spacing_s`` (Telegram's overall window over its count):
        # the same throughput as bursts of 30, and at any moment only a message or two is on its
        # way, so a process killed at any moment leaves only those to be sent twice.
        self.spacing_s = spacing_s
        self._pace_lock = asyncio.Lock()
        self._next_start = 0.0
        self.on_chat_gone = on_chat_gone
        self.sent = 0
        self.gave_up = 0
        self.retried = 0
        self.passes = 0  # claim passes made: a test can wait for the sender to have looked
        self.peak_in_flight = 0
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._answered: list[tuple[OutboxItem, int, asyncio.Future[None]]] = []
        self._answer = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Checked by the loops as well as cancelling them: on Python 3.11 ``wait_for`` can
        # swallow a cancellation that arrives just as its wait ends, and the loop would go on.
        self._stopping = False

    # -- life cycle ----------------------------------------------------------------------------

    def wake(self) -> None:
        """New rows were written: look now rather than at the next idle tick."""
        self._wake.set()

    def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self._run(), name="outbox"),
                loop.create_task(self._renew_leases(), name="outbox-leases"),
                loop.create_task(self._mark_answered(), name="outbox-marks"),
            ]

    async def stop(self) -> None:
        """Stop claiming, let what is in flight finish (up to ``grace_s``), hand the rest back."""
        if not self._tasks:
            return
        self._stopping = True
        self._wake.set()
        run, heartbeat, marker = self._tasks
        for task in (run, heartbeat):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=self.grace_s)
        left = list(self._in_flight)
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        marker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await marker
        self._tasks = []
        self._stopping = False
        with contextlib.suppress(Exception):
            async with self.services.db.begin() as session:
                await outbox.release(session, self.worker, left)

    @property
    def in_flight(self) -> list[int]:
        """The rows this sender has claimed and not yet marked."""
        return list(self._in_flight)

    # -- the loop ------------------------------------------------------------------------------

    def _quiet_now(self) -> bool:
        rules = self.services.rules.schedules
        local = self.services.local(self.services.now()).time()
        return outbox.is_quiet(local, rules.quiet_start, rules.quiet_end)

    async def fill(self) -> int:
        """Claim due rows up to the in-flight bound and start sending them; how many."""
        self.passes += 1
        free = self.max_in_flight - len(self._in_flight)
        if free <= 0:
            return 0
        async with self.services.db.begin() as session:
            items = await outbox.claim(
                session,
                self.worker,
                now=self.services.now(),
                wall=utcnow(),
                lease=self.lease,
                limit=free,
                quiet_now=self._quiet_now(),
            )
        loop = asyncio.get_running_loop()
        for item in items:
            task = loop.create_task(self._deliver(item), name=f"outbox-{item.id}")
            self._in_flight[item.id] = task
            task.add_done_callback(functools.partial(self._done, item.id))
        self.peak_in_flight = max(self.peak_in_flight, len(self._in_flight))
        return len(items)

    def _done(self, item_id: int, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(item_id, None)
        self._wake.set()  # a slot is free

    async def _run(self) -> None:
        if self.warmup_s:
            await asyncio.sleep(self.warmup_s)
        while not self._stopping:
            self._wake.clear()
            try:
                await self.fill()
            except Exception:  # a database hiccup must not end the sender
                log.exception("outbox: claiming failed; trying again shortly")
            # Woken by new rows or a free slot; otherwise look again after idle_s (rows whose
            # retry time or the end of quiet hours came, rows another process wrote).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_s)

    async def _renew_leases(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                async with self.services.db.begin() as session:
                    await outbox.renew(
                        session, self.worker, self.in_flight, wall=utcnow(), lease=self.lease
                    )
            except Exception:
                log.exception("outbox: renewing leases failed")

    async def _mark_answered(self) -> None:
        """Mark every answered row sent, as soon as possible, in as few transactions."""
        while True:
            await self._answer.wait()
            self._answer.clear()
            batch, self._answered = self._answered, []
            for attempt in range(1, MARK_TRIES + 1):
                try:
                    async with self.services.db.begin() as session:
                        now = self.services.now()
                        mine = [
                            await outbox.mark_sent(
                                session, item, self.worker, now=now, message_id=message_id
                            )
                            for item, message_id, _ in batch
                        ]
                except Exception:
                    if attempt < MARK_TRIES:
                        await asyncio.sleep(0.2 * attempt)
                        continue
                    log.exception(
                        "outbox: %d rows sent but not marked: sent again later", len(batch)
                    )
                    mine = [True] * len(batch)
                for (item, _, done), held in zip(batch, mine, strict=True):
                    if not held:
                        log.warning("outbox %s: sent after its lease ran out", item.key)
                    done.set_result(None)
                self.sent += len(batch)
                break

    # -- one row -------------------------------------------------------------------------------

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

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            await self._deliver_once(item)
        except Exception:  # the row's lease runs out and it is tried again
            log.exception("outbox %s: delivery failed unexpectedly", item.key)

    async def _deliver_once(self, item: OutboxItem) -> None:
        if item.respects_quiet_hours and self._quiet_now():  # quiet hours began since the claim
            async with self.services.db.begin() as session:
                await outbox.release(session, self.worker, [item.id])
            return
        await self._pace()
        try:
            message = await self._send(item)
        except Forbidden as exc:  # blocked by the user, kicked from the group
            await self._failed(item, str(exc), retry=False, gone=True)
        except ChatMigrated as exc:
            # The group became a supergroup; the next day's rows go to the new id once the
            # group is bound again. Retrying the old id can never work.
            await self._failed(item, f"{exc} (new id {exc.new_chat_id})", retry=False)
        except BadRequest as exc:  # chat not found, text refused: never deliverable as it is
            gone = "chat not found" in str(exc).lower()
            await self._failed(item, str(exc), retry=False, gone=gone)
        except TelegramError as exc:  # the limiter already retried 429s and the network
            await self._failed(item, str(exc), retry=True)
        except (KeyError, TypeError, ValueError) as exc:  # a malformed row: counted, then given up
            await self._failed(item, f"{exc.__class__.__name__}: {exc}", retry=True)
        else:
            done = asyncio.get_running_loop().create_future()
            self._answered.append((item, message.message_id, done))
            self._answer.set()
            await done  # the row stays in flight (its lease renewed) until it is marked

    async def _pace(self) -> None:
        if not self.spacing_s:
            return
        loop = asyncio.get_running_loop()
        async with self._pace_lock:  # first come, first served
            now = loop.time()
            start = max(now, self._next_start)  # planned times: late wake-ups do not add up
            if start > now:
                await asyncio.sleep(start - now)
            self._next_start = start + self.spacing_s

    async def _failed(
        self, item: OutboxItem, error: str, *, retry: bool, gone: bool = False
    ) -> None:
        async with self.services.db.begin() as session:
            status = await outbox.mark_failed(
                session, item, self.worker, now=self.services.now(), error=error, retry=retry
            )
        if status == outbox.GAVE_UP:
            self.gave_up += 1
            log.warning("outbox %s to %s given up: %s", item.key, item.chat_id, error)
            if gone and self.on_chat_gone is not None:
                try:
                    await self.on_chat_gone(item.chat_id, error)
                except Exception:
                    log.exception("outbox: noting chat %s gone failed", item.chat_id)
        elif status == outbox.PENDING:
            self.retried += 1
            log.info("outbox %s to %s will be retried: %s", item.key, item.chat_id, error)
