"""The composition root: one place that builds the application and wires every part."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults
from telegram.request import HTTPXRequest

from bot.context import SERVICES_KEY, Context, Services
from bot.db import Database, migrate
from bot.i18n import Catalogues
from bot.limits import TelegramLimits
from bot.rules import Rules, load_rules
from bot.sending.bot_client import GreengridBot
from bot.sending.outbox_sender import OutboxSender
from bot.sending.ratelimit import ChatRateLimiter
from bot.services import chats
from bot.services.media import MediaStore
from bot.settings import Settings
from handlers import (
    announce,
    claims,
    common,
    errors,
    export,
    fallback,
    groups,
    help,
    invite,
    lang,
    parked,
    points,
    problem_actions,
    problem_queries,
    ranking,
    redeem,
    remind,
    report_dialog,
    reports,
    start,
    summary,
)
from jobs import (
    albums,
    inbox,
    leader_summary,
    leaderboard,
    media,
    reminders,
    schedule,
    weekly_ranking,
)
from jobs import announcements as announcement_release
from models.base import utcnow

GGApplication = Application[Any, Context, dict[Any, Any], dict[Any, Any], dict[Any, Any], Any]

# Feature modules in registration order; the fallback must stay last.
HANDLER_MODULES = (
    common,
    start,
    help,
    lang,
    invite,
    groups,
    reports,
    report_dialog,
    problem_actions,
    problem_queries,
    remind,
    ranking,
    export,
    summary,
    announce,
    claims,
    points,
    redeem,
    parked,
    errors,
    fallback,
)
JOB_MODULES = (albums, media, inbox)
# Every job with a schedule, run once per period across restarts (jobs/schedule.py).
SCHEDULED_JOBS: tuple[schedule.ScheduledJob, ...] = (
    reminders.SCHEDULE,
    weekly_ranking.SCHEDULE,
    leaderboard.SCHEDULE,
    leader_summary.WEEKLY,
    leader_summary.DAILY,
)
# What the schedule's tick does besides catching up.
TICK_HOOKS: tuple[schedule.TickHook, ...] = (announcement_release.release_due,)


async def catch_up(services: Services) -> None:
    await schedule.tick(services, SCHEDULED_JOBS, TICK_HOOKS)


# Run once as the bot starts, after the schema is up to date: work a job may have missed.
STARTUP_HOOKS: tuple[Callable[[Services], Awaitable[None]], ...] = (catch_up,)


OUTBOX_KEY = "outbox_sender"


def outbox_sender(app: GGApplication) -> OutboxSender | None:
    """The application's outbox sender, once post_init has started it."""
    sender = app.bot_data.get(OUTBOX_KEY)
    return sender if isinstance(sender, OutboxSender) else None


async def _chat_gone(services: Services, chat_id: int, why: str) -> None:
    """Telegram refused a scheduled message for good: a group the bot is no longer in is
    unbound (the my_chat_member update may have been missed while the bot was down); a person
    is marked unreachable."""
    if chat_id < 0:
        async with services.db.begin() as session:
            await chats.unbind(session, chat_id)
    else:  # a person: blocked the bot, or never opened it (a leader: the admins are told)
        await leader_summary.on_private_chat_gone(services, chat_id)


def _bot(settings: Settings, limits: TelegramLimits) -> GreengridBot:
    """The Bot API client, built as ApplicationBuilder would build it (a pool of 256
    connections for calls, one for getUpdates), with the timeouts of the settings."""
    seconds = settings.bot_api_timeout_s

    def request(pool: int) -> HTTPXRequest:
        if seconds is None:  # python-telegram-bot's own defaults
            return HTTPXRequest(connection_pool_size=pool)
        return HTTPXRequest(
            connection_pool_size=pool,
            connect_timeout=seconds,
            read_timeout=seconds,
            write_timeout=seconds,
        )

    base_url, file_url = settings.api_urls or (
        "https://api.telegram.org/bot",
        "https://api.telegram.org/file/bot",
    )
    return GreengridBot(
        settings.token(),
        base_url=base_url,
        base_file_url=file_url,
        defaults=Defaults(tzinfo=settings.zone),
        # Tests and the demo scale the pause before a retry with Telegram's windows.
        rate_limiter=ChatRateLimiter(limits=limits, backoff_base_s=0.5 * settings.rate_limit_scale),
        request=request(256),
        get_updates_request=request(1),
    )


def build_application(
    settings: Settings,
    *,
    rules: Rules | None = None,
    clock: Callable[[], datetime] = utcnow,
    migrate_on_start: bool = True,
) -> GGApplication:
    """The real application. ``clock`` is the only seam: tests and the demo move time with it."""
    services = Services(
        settings=settings,
        rules=rules or load_rules(settings.rules_file),
        db=Database.connect(settings.database_url),
        i18n=Catalogues(settings.default_locale),
        media=MediaStore(settings.media_dir),
        clock=clock,
    )
    limits = TelegramLimits().scaled(settings.rate_limit_scale)

    sender: OutboxSender | None = None

    async def post_init(app: GGApplication) -> None:
        nonlocal sender
        if migrate_on_start:
            await migrate(services.db)
        await help.set_menus(app, services)
        sender = OutboxSender(
            app.bot,
            services,
            lease=timedelta(seconds=settings.outbox_lease_seconds),
            warmup_s=limits.overall.window_s,
            spacing_s=limits.overall.window_s / limits.overall.n,
            on_chat_gone=lambda chat_id, why: _chat_gone(services, chat_id, why),
        )
        services.wake_outbox = sender.wake
        app.bot_data[OUTBOX_KEY] = sender
        sender.start()
        for hook in STARTUP_HOOKS:
            await hook(services)

    async def post_stop(_app: GGApplication) -> None:
        if sender is not None:
            await sender.stop()

    async def post_shutdown(_app: GGApplication) -> None:
        await services.db.dispose()

    # No Updater: updates come in through the durable inbox (bot/runtime.py), never straight
    # from python-telegram-bot's polling or webhook, which acknowledge before handlers run.
    builder = (
        ApplicationBuilder()
        .bot(_bot(settings, limits))
        .updater(None)
        .context_types(ContextTypes(context=Context))
        .post_init(post_init)
        .post_stop(post_stop)
        .post_shutdown(post_shutdown)
    )
    app: GGApplication = builder.build()
    app.bot_data[SERVICES_KEY] = services
    for module in HANDLER_MODULES:
        module.register(app)
    for job_module in JOB_MODULES:
        job_module.register(app)
    schedule.register(app, SCHEDULED_JOBS, TICK_HOOKS)
    return app
