"""Every scheduled job runs once per period, across restarts: a period missed while the bot was
down is caught up when it is back (the same day for the reminders, the same week for the
ranking, the same month for the leaderboard), never twice, never in quiet hours, and never a
period that has passed. The real application, stopped and started again on the same database
and the same stand-in, with the clock under the test's control."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path

import pytest

from bot.harness import TOKEN, Clock, Harness, running_bot
from bot.limits import TelegramLimits
from bot.sandbox import Sandbox
from bot.services import points
from bot.services.roles import Role
from jobs import reminders, schedule
from tests.e2e.conftest import ADMIN, GROUP, start_world
from tests.e2e.reminder_world import bind, drained, local, person, problem, rows
from tests.integration.points_world import policy

LIAISON, VOLUNTEER, LEADER = 2001, 4001, 5001
MONDAY_1ST = local(2027, 2, 1, 8, 0)  # a Monday and the 1st of a month, before every job


async def kinds(h: Harness) -> Counter[str]:
    return Counter(r.kind for r in await rows(h))


async def tick(h: Harness) -> None:
    """The schedule's tick, as the job queue runs it every half minute."""
    assert h.app.job_queue is not None
    (job,) = h.app.job_queue.get_jobs_by_name(schedule.TICK_JOB)
    await job.run(h.app)


class Restarts:
    def __init__(self, url: str, tmp_path: Path, sb: Sandbox, clock: Clock) -> None:
        self.url, self.tmp_path, self.sb, self.clock = url, tmp_path, sb, clock

    @asynccontextmanager
    async def bot(self) -> AsyncIterator[Harness]:
        async with running_bot(
            self.url,
            admin_ids=[ADMIN],
            sandbox=self.sb,
            media_dir=self.tmp_path / "media",
            clock=self.clock,
        ) as h:
            yield h


@pytest.fixture
async def restarts(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Restarts]:
    sb = Sandbox(TOKEN, limits=TelegramLimits().scaled(0.05))
    await sb.start()
    try:
        yield Restarts(sqlite_url, tmp_path, sb, Clock(fixed=MONDAY_1ST))
    finally:
        await sb.stop()


async def test_missed_periods_are_caught_up_once_across_restarts(restarts: Restarts) -> None:
    clock = restarts.clock
    async with restarts.bot() as h:
        await start_world(h)
        await person(h, LIAISON, "李联络", Role.liaison, "NH-DQ")
        await person(h, LEADER, "郑区长", Role.leader, "NH")
        volunteer = await person(h, VOLUNTEER, "赵志愿", Role.volunteer, "NH-DQ-01")
        await bind(h, GROUP, "NH")
        await problem(h, local(2027, 1, 29, 9))  # overdue since Friday
        async with h.db.begin() as s:  # January's points, for February's leaderboard
            await points.earn(
                s, policy(), volunteer, points.Kind.activity, 5, key="jan",
                cap_day=date(2027, 1, 20), now=local(2027, 1, 20, 10),
            )  # fmt: skip
        await tick(h)  # 08:00: nothing is due yet
        assert await kinds(h) == Counter()

    # The bot was down at 09:00 and is back at 10:00: every job's period is caught up, once.
    clock.fixed = local(2027, 2, 1, 10, 0)
    async with restarts.bot() as h:
        await drained(h)
        caught = await kinds(h)
        assert caught == Counter(
            {"remind": 1, "overdue-group": 1, "ranking": 1, "leaderboard": 1, "summary": 2}
        )
        keys = {r.key for r in await rows(h)}
        assert f"ranking:{GROUP}:2027-W05" in keys
        assert f"summary:{LEADER}:2027-W05" in keys  # the week just ended: 2027-W04
        assert any(k.startswith(f"leaderboard:{GROUP}:2027-01") for k in keys)  # January's
        assert [m for m in h.sb.sent(GROUP) if "志愿者积分榜" in m.content]
        assert [m for m in h.sb.sent(LIAISON) if "今日提醒（2027-02-01）" in m.content]

    # Back again at 11:00 with a new overdue problem: the periods were written; nothing new.
    clock.fixed = local(2027, 2, 1, 11, 0)
    async with restarts.bot() as h:
        await problem(h, local(2027, 1, 31, 9))
        await tick(h)
        assert await kinds(h) == caught

    # Tuesday 22:00, after a day down: Tuesday's reminders are not sent in the night...
    clock.fixed = local(2027, 2, 2, 22, 0)
    async with restarts.bot() as h:
        await tick(h)
        assert await kinds(h) == caught
        # ...nor the next morning beside Wednesday's (Tuesday has passed); Wednesday's come
        # at their time, once, however often the tick runs.
        clock.fixed = local(2027, 2, 3, 8, 30)
        await tick(h)
        assert await kinds(h) == caught
        clock.fixed = local(2027, 2, 3, 9, 5)
        await tick(h)
        await tick(h)
        await drained(h)
        # (the leader is told too now: overdue more than 3 days)
        assert await kinds(h) == caught + Counter({"remind": 1, "overdue-group": 1, "escalate": 1})
        wednesday = [r.key for r in await rows(h) if r.key.endswith("2027-02-03")]
        assert sorted(wednesday) == [
            f"escalate:{LEADER}:2027-02-03",
            f"overdue-group:{GROUP}:2027-02-03",
            f"remind:{LIAISON}:2027-02-03",
        ]

        # Thursday 09:00: the job queue fires on time; a restart half an hour later finds the
        # period written and writes nothing, whatever has changed since.
        clock.fixed = local(2027, 2, 4, 9, 0)
        assert h.app.job_queue is not None
        (job,) = h.app.job_queue.get_jobs_by_name(reminders.JOB_NAME)
        await job.run(h.app)
        before = await kinds(h)
        assert before["remind"] == 3
    clock.fixed = local(2027, 2, 4, 9, 30)
    async with restarts.bot() as h:
        await problem(h, local(2027, 2, 3, 9))
        await tick(h)
        assert await kinds(h) == before

    # The next Monday: each weekly job comes with the next week, at its time, not before.
    clock.fixed = local(2027, 2, 8, 8, 29)
    async with restarts.bot() as h:
        assert ((await kinds(h))["ranking"], (await kinds(h))["summary"]) == (1, 2)
        clock.fixed = local(2027, 2, 8, 8, 31)
        await tick(h)
        assert ((await kinds(h))["ranking"], (await kinds(h))["summary"]) == (1, 4)
        clock.fixed = local(2027, 2, 8, 9, 1)
        await tick(h)
        ranking_keys = sorted(r.key for r in await rows(h) if r.kind == "ranking")
        assert ranking_keys == [f"ranking:{GROUP}:2027-W05", f"ranking:{GROUP}:2027-W06"]
        assert (await kinds(h))["summary"] == 4
