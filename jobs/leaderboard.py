"""Once a month (``points.leaderboard_day`` at ``points.leaderboard_time``): last month's
volunteer leaderboard, per village, to every bound group (a subject's group gets its villages,
the district's group all of them).

The job only writes outbox rows keyed by group and month, so running it twice, in two
processes, or again after a restart posts each board once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.context import Context, Services
from bot.services import outbox, points_reports
from bot.services.points_rules import month_window
from handlers.points_views import board_lines, chunks, month_label
from jobs.schedule import Cadence, Every, ScheduledJob

log = logging.getLogger(__name__)


async def write_leaderboards(services: Services, *, now: datetime | None = None) -> int:
    """Last month's boards into the outbox; how many rows were new."""
    now = now or services.now()
    start, end = month_window(now, services.settings.zone, back=1)
    month = services.local(start).strftime("%Y-%m")
    tr = services.i18n.translator(services.settings.default_locale)
    header = tr("leaderboard.title", month=month_label(services, tr, start))
    written = 0
    async with services.db.begin() as session:
        for chat_id, villages in await points_reports.bound_groups_villages(session):
            boards = await points_reports.leaderboard(
                session, start, end, villages, top=services.rules.points.leaderboard_top
            )
            for part, text in enumerate(chunks(header, board_lines(tr, boards))):
                written += await outbox.enqueue(
                    session,
                    f"leaderboard:{chat_id}:{month}:{part}",
                    "leaderboard",
                    chat_id,
                    {"text": text},
                    now=now,
                )
    if written:
        services.wake_outbox()
    log.info("leaderboards for %s: %d new outbox rows", month, written)
    return written


async def monthly_leaderboards(context: Context) -> None:
    await write_leaderboards(context.services)


SCHEDULE = ScheduledJob(
    "monthly-leaderboards",
    lambda rules: Every(
        Cadence.monthly, rules.points.leaderboard_time, day=rules.points.leaderboard_day
    ),
    write_leaderboards,
)
