"""Running the application in an event loop we own: `python -m bot run`, the demo and the tests
all go through `serving`, so every one of them receives through the durable inbox.

python-telegram-bot's own Updater and webhook server acknowledge an update before its handlers
have run; here the application is built without an Updater (`updater(None)`, the pattern of
PTB's customwebhookbot example) and updates reach the handlers only through the inbox:

    Telegram ──getUpdates / webhook POST──▶ inbox table ──processor──▶ app.process_update
               (acknowledged once stored)    (keyed by update_id)      (marked done after)
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import Application

from bot.context import SERVICES_KEY, Services
from bot.receiving.intake import Intake, Poller
from bot.receiving.metrics import Metrics
from bot.receiving.processor import InboxProcessor
from bot.receiving.web import WebhookConfig, WebServer
from bot.sending.ratelimit import ChatRateLimiter, SendStats

log = logging.getLogger(__name__)

AnyApp = Application[Any, Any, Any, Any, Any, Any]


@dataclass
class Runtime:
    app: AnyApp
    services: Services
    metrics: Metrics
    intake: Intake
    processor: InboxProcessor
    web: WebServer
    poller: Poller | None
    mode: str


def _send_stats(app: AnyApp) -> SendStats | None:
    limiter = app.bot.rate_limiter if hasattr(app.bot, "rate_limiter") else None
    return limiter.stats if isinstance(limiter, ChatRateLimiter) else None


@asynccontextmanager
async def serving(
    app: AnyApp,
    *,
    webhook: bool = False,
    poll_timeout: int = 30,
    processor_idle_s: float = 1.0,
) -> AsyncIterator[Runtime]:
    """Start everything in order, yield while the bot runs, and take it down in reverse.

    Polling mode deletes any webhook and polls; webhook mode registers the webhook (and leaves it
    registered on stop: other processes, or this one restarted, keep receiving). The HTTP server
    (/healthz, /metrics, and the webhook) runs in both modes on HTTP_HOST:HTTP_PORT.
    """
    services: Services = app.bot_data[SERVICES_KEY]
    settings = services.settings
    hook = settings.webhook() if webhook else None  # ConfigError before anything starts
    metrics = Metrics(lambda: _send_stats(app))
    processor = InboxProcessor(
        app,
        services,
        metrics,
        workers=settings.inbox_workers,
        max_attempts=settings.inbox_max_attempts,
        retry_base_s=settings.inbox_retry_s,
        idle_s=processor_idle_s,
    )
    services.wake_inbox = processor.wake
    intake = Intake(services, metrics, processor.wake)
    mode = "webhook" if hook else "polling"
    web = WebServer(
        services,
        metrics,
        intake,
        mode=mode,
        webhook=WebhookConfig(hook[1], hook[2]) if hook else None,
    )
    poller: Poller | None = None

    await app.initialize()
    try:
        if app.post_init is not None:
            await app.post_init(app)
        await app.start()
        try:
            # Updates left pending by a previous run (a crash, a kill) are taken up first.
            processor.start()
            await web.start(settings.http_host, settings.http_port)
            if hook is not None:
                await app.bot.set_webhook(
                    hook[0],
                    secret_token=hook[2],
                    allowed_updates=Update.ALL_TYPES,
                    max_connections=settings.webhook_max_connections,
                )
                log.info("webhook registered at %s", hook[0])
            else:
                await app.bot.delete_webhook()
                # Tests and the demo scale the pause after a failed poll with Telegram's windows.
                retry_s = 0.5 * settings.rate_limit_scale
                poller = Poller(app.bot, intake, timeout=poll_timeout, retry_base_s=retry_s)
                poller.start()
            yield Runtime(app, services, metrics, intake, processor, web, poller, mode)
        finally:
            if poller is not None:
                await poller.stop()
            await web.stop()
            await processor.stop()
            await app.stop()
            if app.post_stop is not None:
                await app.post_stop(app)
    finally:
        await app.shutdown()
        if app.post_shutdown is not None:
            await app.post_shutdown(app)


async def run_until_stopped(app: AnyApp, *, webhook: bool) -> None:
    """`python -m bot run`: serve until SIGINT or SIGTERM, then stop in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serving(app, webhook=webhook) as runtime:
        log.info("greengrid running (%s; health on %s/healthz)", runtime.mode, runtime.web.url)
        await stop.wait()
        log.info("greengrid stopping")


@asynccontextmanager
async def polling(app: AnyApp, *, timeout: int = 10) -> AsyncIterator[None]:
    """Kept for callers of the earlier API: `serving` in polling mode."""
    async with serving(app, poll_timeout=timeout):
        yield
