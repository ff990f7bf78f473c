"""The morning job is scheduled by the real application at the rules file's local time in the
configured zone (the test clock moves ``services.now()``, not the scheduler, so the schedule is
checked on the scheduler itself)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.harness import running_bot
from jobs.reminders import JOB_NAME
from jobs.schedule import MISFIRE_GRACE_S
from tests.e2e.conftest import ADMIN


def _job(app: Any) -> Any:
    assert app.job_queue is not None
    (job,) = app.job_queue.get_jobs_by_name(JOB_NAME)
    return job


async def test_daily_job_runs_at_nine_in_shanghai_by_default(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running_bot(sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "m") as h:
        job = _job(h.app)
        trigger = job.job.trigger
        before = datetime(2026, 3, 10, 0, 59, 59, tzinfo=UTC)  # 08:59:59 in Shanghai
        assert trigger.get_next_fire_time(None, before) == datetime(2026, 3, 10, 1, tzinfo=UTC)
        after = datetime(2026, 3, 10, 1, 0, 1, tzinfo=UTC)
        assert trigger.get_next_fire_time(None, after) == datetime(2026, 3, 11, 1, tzinfo=UTC)
        # The running scheduler has it next at the coming 09:00 in Shanghai.
        shanghai = ZoneInfo("Asia/Shanghai")
        now = datetime.now(shanghai)
        expected = now.replace(hour=9, minute=0, second=0, microsecond=0)
        if expected <= now:
            expected += timedelta(days=1)
        assert job.next_t == expected
        assert job.job.misfire_grace_time == MISFIRE_GRACE_S


async def test_daily_job_follows_the_rules_file_and_the_zone(
    sqlite_url: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    # Unquoted, as people write it: YAML 1.1 reads 7:30 as the number 450.
    rules.write_text("schedules:\n  daily_reminder_time: 7:30\n  quiet_start: 22:00\n")
    async with running_bot(
        sqlite_url,
        admin_ids=[ADMIN],
        media_dir=tmp_path / "m",
        rules_file=rules,
        timezone="Europe/Berlin",
    ) as h:
        schedules = h.services.rules.schedules
        assert (schedules.daily_reminder_time.hour, schedules.daily_reminder_time.minute) == (7, 30)
        assert (schedules.quiet_start.hour, schedules.quiet_end.hour) == (22, 8)
        trigger = _job(h.app).job.trigger
        berlin = ZoneInfo("Europe/Berlin")
        # Across the spring change of clocks: 07:30 local is 06:30 UTC, then 05:30 UTC.
        winter = datetime(2026, 3, 28, 7, 0, tzinfo=UTC)
        assert trigger.get_next_fire_time(None, winter) == datetime(
            2026, 3, 29, 7, 30, tzinfo=berlin
        )
        assert trigger.get_next_fire_time(None, winter).astimezone(UTC).hour == 5
