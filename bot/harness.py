"""The real application running against the local Telegram stand-in, in one event loop.

Used by `make demo` and the end-to-end tests: the same factory and the same durable intake as
production (`bot.runtime.serving`: inbox, processor, HTTP server), pointed at the stand-in over
real HTTP, with a clock that can be moved. Polling by default; ``webhook=True`` has the stand-in
post each update to the bot's webhook, as Telegram does.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.app import GGApplication, build_application, outbox_sender
from bot.context import SERVICES_KEY, Services
from bot.db import Database
from bot.limits import TelegramLimits
from bot.runtime import Runtime, serving
from bot.sandbox import Sandbox, SentMessage
from bot.sending.outbox_sender import OutboxSender
from bot.settings import load_settings
from models.base import utcnow

TOKEN = "123456:SANDBOX-TOKEN"
WEBHOOK_SECRET = "sandbox-webhook-secret"


@dataclass
class Clock:
    """Wall-clock time unless a test or scene sets or moves it."""

    fixed: datetime | None = None
    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return (self.fixed or utcnow()) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass
class Harness:
    sb: Sandbox
    app: GGApplication
    clock: Clock
    runtime: Runtime | None = None

    @property
    def http_url(self) -> str:
        """The bot's own HTTP server (/healthz, /metrics, and the webhook in webhook mode)."""
        assert self.runtime is not None
        return self.runtime.web.url

    @property
    def services(self) -> Services:
        services: Services = self.app.bot_data[SERVICES_KEY]
        return services

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def sender(self) -> OutboxSender:
        sender = outbox_sender(self.app)
        assert sender is not None, "the outbox sender starts in post_init"
        return sender

    async def say(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        n: int = 1,
        timeout: float = 10.0,
    ) -> list[SentMessage]:
        """The user sends ``text``; returns the bot's next ``n`` messages in that chat."""
        mark = self.sb.mark()
        self.sb.send_text(user_id, text, chat_id=chat_id)
        return await self.sb.wait_messages(
            chat_id if chat_id is not None else user_id, n=n, since=mark, timeout=timeout
        )

    async def reply_to(self, user_id: int, text: str, **kwargs: Any) -> SentMessage:
        return (await self.say(user_id, text, **kwargs))[0]

    async def wait_for(
        self, chat_id: int, since: int, containing: str, *, timeout: float = 10.0
    ) -> SentMessage:
        """The bot's latest message to ``chat_id`` after ``since`` whose text contains
        ``containing`` (waiting for it if need be)."""

        def found() -> SentMessage | None:
            hits = [m for m in self.sb.sent(chat_id) if m.seq > since and containing in m.content]
            return hits[-1] if hits else None

        await self.sb.wait_until(
            lambda: found() is not None,
            timeout=timeout,
            what=f"a message to {chat_id} containing {containing!r}",
        )
        message = found()
        assert message is not None
        return message

    async def press(self, user_id: int, message: SentMessage, button: str) -> SentMessage:
        """Tap ``button``; returns the message as the bot edited it, or the bot's next one."""
        mark = self.sb.mark()
        self.sb.press(user_id, message, text=button)
        return await self.sb.wait_change(message, since=mark)

    async def press_answer(
        self,
        user_id: int,
        message: SentMessage,
        button: str | None = None,
        *,
        data: str | None = None,
    ) -> str:
        """Tap ``button`` (or send raw ``data``); returns the text of the bot's answer."""
        query_id = self.sb.press(user_id, message, text=button, data=data)
        answer = await self.sb.wait_answer(query_id)
        return answer.text or ""


@asynccontextmanager
async def running_bot(
    database_url: str,
    *,
    admin_ids: list[int],
    speed: float = 0.05,
    clock: Clock | None = None,
    sandbox: Sandbox | None = None,
    webhook: bool = False,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """Start the stand-in (unless given) and the real application receiving from it.

    ``speed`` scales Telegram's rate-limit windows on both sides alike, so the limiter's logic
    runs unchanged in a fraction of the time. The bot's HTTP server listens on a free port.
    """
    clock = clock or Clock()
    owned = sandbox is None
    sb = sandbox or Sandbox(TOKEN, limits=TelegramLimits().scaled(speed))
    if owned:
        await sb.start()
    try:
        settings.setdefault("media_dir", Path(tempfile.mkdtemp(prefix="greengrid-media-")))
        settings.setdefault("inbox_retry_s", 0.2)  # a failed update runs again in a moment
        if webhook:
            port = settings.setdefault("http_port", free_port())
            settings.setdefault("webhook_url", f"http://127.0.0.1:{port}/telegram")
            settings.setdefault("webhook_secret", WEBHOOK_SECRET)
        else:
            settings.setdefault("http_port", 0)
        config = load_settings(
            bot_token=TOKEN,
            bot_api_base_url=sb.api_base_url,
            database_url=database_url,
            admin_ids=admin_ids,
            rate_limit_scale=speed,
            **settings,
        )
        app = build_application(config, clock=clock)
        async with serving(app, webhook=webhook, poll_timeout=1) as runtime:
            try:
                yield Harness(sb, app, clock, runtime)
            finally:
                sb.release_pollers()  # stop without waiting out the long poll
    finally:
        if owned:
            await sb.stop()


def free_port() -> int:
    """A TCP port free right now on the loopback (for a webhook URL known before listening)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
