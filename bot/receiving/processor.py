"""Runs the application's handlers on updates taken from the inbox, and records each outcome.

A dispatcher claims due updates (see `bot.services.inbox` for order and claims) and runs each in
a task of its own, up to ``workers`` at once. An update is marked done after its handlers
finished; one whose handlers failed runs again after a pause, and is parked after
``max_attempts`` failed runs. A process stopped or killed mid-way leaves its updates pending:
they run again from the start, so a handler must tolerate running twice for one update (the
domain's writes are keyed by the message, e.g. one problem per reported message).

The inbox keeps real time (not the services' clock, which tests and the demo move): its times
are about when things arrived and ran.

python-telegram-bot hands a handler's exception to the error handlers and carries on, so the
failure is caught there: `note_error`, the last error handler, records it for the attempt
running in this task (a context variable) and stops the update's remaining handler groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import traceback
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop

from bot.context import Services
from bot.receiving.metrics import Metrics
from bot.services import inbox
from bot.services.inbox import InboxItem
from models.base import utcnow

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    """One run of one update's handlers."""

    update_id: int
    number: int  # 1 for the first run
    final: bool  # a failure now parks the update
    error: BaseException | None = None


_attempt: ContextVar[Attempt | None] = ContextVar("greengrid_inbox_attempt", default=None)


def current_attempt() -> Attempt | None:
    """The inbox run this handler belongs to (None outside one, e.g. in a job)."""
    return _attempt.get()


async def note_error(update: object, context: Any) -> None:
    """The last error handler: the failure belongs to the update running in this task."""
    attempt = _attempt.get()
    if attempt is None or not isinstance(update, Update) or update.update_id != attempt.update_id:
        return
    if attempt.error is None:
        attempt.error = context.error
    # The update will run again as a whole (or be parked): its later handler groups wait too.
    raise ApplicationHandlerStop


def describe_error(error: BaseException) -> str:
    """The error's first line, then the end of its traceback (where it happened)."""
    head = f"{type(error).__name__}: {error}"
    trace = "".join(traceback.format_exception(error))
    return head + "\n" + trace[-(inbox.ERROR_MAX - len(head) - 1) :]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Claim:
    item: InboxItem
    # PostgreSQL: the open transaction that holds the row's lock until the outcome is written.
    session: AsyncSession | None


class InboxProcessor:
    def __init__(
        self,
        app: Application[Any, Any, Any, Any, Any, Any],
        services: Services,
        metrics: Metrics,
        *,
        workers: int = 1,
        max_attempts: int = 3,
        retry_base_s: float = 2.0,
        idle_s: float = 1.0,
        grace_s: float = 10.0,
        worker: str | None = None,
    ) -> None:
        self.app = app
        self.services = services
        self.metrics = metrics
        self.workers = max(1, workers)
        self.max_attempts = max(1, max_attempts)
        self.retry_base_s = retry_base_s
        self.idle_s = idle_s
        self.grace_s = grace_s
        self.worker = worker or worker_name()
        self.locking = services.db.dialect == "postgresql"
        self._running: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        app.add_error_handler(note_error)

    def wake(self) -> None:
        """New updates were stored (or parked ones put back): look now."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="inbox")

    async def stop(self) -> None:
        """Take nothing new; give running updates ``grace_s`` to finish, then cancel them (they
        stay pending and run again on the next start)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        running = list(self._running.values())
        if running:
            _done, late = await asyncio.wait(running, timeout=self.grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # ------------------------------------------------------------------ dispatching

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                while len(self._running) < self.workers and not self._stopping:
                    claim = await self._claim()
                    if claim is None:
                        break
                    self._spawn(claim)
            except Exception:  # a database hiccup must not end the processor
                log.exception("inbox: could not claim updates; trying again shortly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_s)

    async def _claim(self) -> _Claim | None:
        now = utcnow()
        exclude = list(self._running)
        if not self.locking:
            async with self.services.db.begin() as session:
                items = await inbox.next_due(session, now=now, exclude=exclude)
            return _Claim(items[0], None) if items else None
        session = self.services.db.sessions()
        try:
            await session.begin()
            items = await inbox.next_due(session, now=now, exclude=exclude, lock=True)
        except BaseException:
            await session.close()
            raise
        if not items:
            await session.close()
            return None
        return _Claim(items[0], session)

    def _spawn(self, claim: _Claim) -> None:
        update_id = claim.item.update_id
        task = asyncio.get_running_loop().create_task(
            self._handle(claim), name=f"inbox:{update_id}"
        )
        self._running[update_id] = task

        def finished(_task: asyncio.Task[None]) -> None:
            self._running.pop(update_id, None)
            self._wake.set()  # a worker is free, and the lane's next update may be due

        task.add_done_callback(finished)

    # ------------------------------------------------------------------ one update

    async def _handle(self, claim: _Claim) -> None:
        item = claim.item
        attempt = Attempt(
            item.update_id, item.attempts + 1, final=item.attempts + 1 >= self.max_attempts
        )
        started = time.perf_counter()
        try:
            try:
                update = Update.de_json(item.payload, self.app.bot)
                _attempt.set(attempt)  # this task's own context: seen by note_error
                await self.app.process_update(update)
                error = attempt.error
            except Exception as exc:  # an update PTB cannot read, or a failure outside handlers
                log.exception("inbox: update %s could not be processed", item.update_id)
                error = exc
            self.metrics.latency.labels(item.kind).observe(time.perf_counter() - started)
            await self._record(claim, error)
        finally:
            if claim.session is not None:
                await claim.session.close()

    async def _record(self, claim: _Claim, error: BaseException | None) -> None:
        item = claim.item
        now = utcnow()
        status = inbox.DONE
        try:
            if claim.session is not None:
                status = await self._write(claim.session, item, error, now)
                await claim.session.commit()
            else:
                async with self.services.db.begin() as session:
                    status = await self._write(session, item, error, now)
        except Exception:
            log.exception(
                "inbox: could not record the outcome of update %s; it will run again",
                item.update_id,
            )
            return
        if error is None:
            self.metrics.processed.inc()
            self.metrics.last_processed.set(time.time())
            return
        self.metrics.failed.inc()
        if status == inbox.PARKED:
            self.metrics.parked.inc()
            log.error(
                "inbox: update %s parked after %d tries: %s",
                item.update_id,
                item.attempts + 1,
                describe_error(error).splitlines()[0],
            )
        else:
            delay = inbox.retry_delay(item.attempts + 1, self.retry_base_s).total_seconds()
            log.warning(
                "inbox: update %s failed (try %d of %d); it runs again in %.1fs",
                item.update_id,
                item.attempts + 1,
                self.max_attempts,
                delay,
            )
            # Look again when it is due rather than at the next idle tick.
            asyncio.get_running_loop().call_later(delay, self.wake)

    async def _write(
        self, session: AsyncSession, item: InboxItem, error: BaseException | None, now: Any
    ) -> str:
        if error is None:
            await inbox.mark_done(session, item.update_id, now=now, worker=self.worker)
            return inbox.DONE
        return await inbox.mark_failed(
            session,
            item.update_id,
            now=now,
            worker=self.worker,
            error=describe_error(error),
            max_attempts=self.max_attempts,
            retry_base_s=self.retry_base_s,
        )
