"""Every Monday (configurable): the week's ranking to every bound group, through the outbox.

The ranking is kept as the week's snapshot first; the post is built from that snapshot, so a
second firing (a retry, a second process) writes the same rows under the same keys
(``ranking:<chat>:<week>``), which the outbox keeps once. The chart goes into the media store
and the outbox row names it by its SHA-256; the sender reads the bytes from there.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from bot.context import Context, Services
from bot.services import chats, outbox, snapshots, tallies
from bot.services.charts import draw_ranking_chart
from bot.services.ranking import rank_changes, rank_subjects
from bot.services.roles import AreaKind
from bot.services.windows import WindowKind, period, week_key
from handlers.ranking_views import chart_text, compose_ranking
from jobs.schedule import Cadence, Every, ScheduledJob

log = logging.getLogger(__name__)
KIND = "ranking"


async def write_weekly_ranking(services: Services) -> int:
    """This week's ranking into the outbox for every bound group; how many rows were new."""
    now = services.now()
    zone = services.settings.zone
    today = services.local(now).date()
    week = week_key(today)
    rules = services.rules.ranking
    async with services.db.begin() as session:
        if not await chats.bound_groups(session):
            # Nothing to post to: no snapshot either (it records what was posted), so that a
            # group bound later this week gets this week's ranking as it stands then.
            return 0
        posted = await snapshots.posted_ranking(session, week, zone)
        if posted is None:
            # The period that holds yesterday: on a Monday a "week" window is the week just
            # ended, and on the first Monday of a month a "month" window is the whole month
            # before, not a day of the new one.
            window = period(WindowKind(rules.window), today - timedelta(days=1), zone)
            counts = await tallies.window_counts(session, window, now, zone)
            await snapshots.take_snapshot(
                session, week, window, rank_subjects(counts.subjects, rules), now=now
            )
    async with services.db.begin() as session:
        # Whoever took it first: a process that lost the race posts the winner's snapshot.
        posted = await snapshots.posted_ranking(session, week, zone)
        previous = await snapshots.latest_posted(session, zone, before=week)
        groups = await chats.bound_groups(session)
    assert posted is not None
    if not groups:
        return 0
    changes = rank_changes(posted.standings, snapshots.ranks_of(previous))
    tr = services.i18n.translator(services.settings.default_locale)
    as_of = services.local(posted.taken_at)
    chart_sha: str | None = None
    if posted.standings.ranked:
        png = await draw_ranking_chart(
            posted.standings, changes, chart_text(tr, posted.window, as_of)
        )
        chart_sha = services.media.put(png)
    written = 0
    async with services.db.begin() as session:
        for group in groups:
            focus = group.area_id if group.area_kind is AreaKind.subject else None
            post = compose_ranking(tr, posted.standings, changes, posted.window, as_of, focus=focus)
            for index, text in enumerate(post.parts):
                payload: dict[str, Any] = {"text": text}
                if index == 0 and chart_sha is not None:
                    payload["photo_sha256"] = chart_sha
                key = f"{KIND}:{group.telegram_chat_id}:{week}"
                written += await outbox.enqueue(
                    session,
                    key if index == 0 else f"{key}:{index + 1}",
                    KIND,
                    group.telegram_chat_id,
                    payload,
                    now=now,
                )
    if written:
        services.wake_outbox()
    log.info("weekly ranking %s: %d new outbox rows for %d groups", week, written, len(groups))
    return written


async def weekly_ranking(context: Context) -> None:
    await write_weekly_ranking(context.services)


SCHEDULE = ScheduledJob(
    "weekly-ranking",
    lambda rules: Every(
        Cadence.weekly,
        rules.schedules.weekly_ranking_time,
        weekday=rules.schedules.weekly_ranking_day,
    ),
    write_weekly_ranking,
)
