"""The pure rules behind reminders, as tables: days overdue, due soon, quiet hours, backoff,
catching up on start, fitting a message into Telegram's 4096 characters, the group's HTML."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.i18n import Catalogues
from bot.rules import Schedules
from bot.sandbox import formatting
from bot.services.outbox import is_quiet, retry_delay
from bot.services.problem_machine import Status, days_overdue
from bot.services.reminders import (
    Due,
    GroupOverdue,
    Liaison,
    SubjectOverdue,
    is_due_soon,
)
from jobs.reminder_texts import TEXT_LIMIT, fit, group_text, utf16_len
from jobs.schedule import Cadence, Every, catch_up_period, period_of

SH = ZoneInfo("Asia/Shanghai")


def sh(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=SH).astimezone(UTC)


END_OF_10TH = sh(10, 23, 59, 59)


@pytest.mark.parametrize(
    ("now", "days"),
    [
        (sh(10, 9), 0),
        (END_OF_10TH, 0),  # due this second
        (sh(11, 0, 0, 0), 1),  # one second late: the next local day
        (sh(11, 23, 59, 59), 1),
        (sh(12, 7, 59), 2),  # still the 11th in UTC
        (sh(14, 9), 4),
    ],
)
def test_days_overdue_count_local_dates(now: datetime, days: int) -> None:
    assert days_overdue(END_OF_10TH, now, SH) == days


def test_a_deadline_in_the_day_is_one_day_overdue_once_passed_the_same_day() -> None:
    assert days_overdue(sh(10, 12), sh(10, 12, 0, 1), SH) == 1


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        (sh(10, 9), True),  # now
        (sh(12, 9), True),  # exactly 48 h
        (sh(12, 9, 0, 1), False),
        (sh(10, 8, 59, 59), False),  # already overdue, not "due soon"
    ],
)
def test_due_soon_edges(deadline: datetime, expected: bool) -> None:
    assert is_due_soon(deadline, sh(10, 9), timedelta(hours=48)) is expected


@pytest.mark.parametrize(
    ("local", "start", "end", "quiet"),
    [
        (time(20, 59, 59), time(21), time(8), False),
        (time(21), time(21), time(8), True),
        (time(0), time(21), time(8), True),
        (time(7, 59, 59), time(21), time(8), True),
        (time(8), time(21), time(8), False),
        (time(13), time(12), time(14), True),  # not wrapping midnight
        (time(14), time(12), time(14), False),
        (time(3), time(0), time(0), False),  # equal: no quiet hours
    ],
)
def test_quiet_hours(local: time, start: time, end: time, quiet: bool) -> None:
    assert is_quiet(local, start, end) is quiet


def test_retry_backoff_doubles_up_to_an_hour() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert retry_delay(30) == timedelta(hours=1)


DAILY = Every(Cadence.daily, time(9))
WEEKLY = Every(Cadence.weekly, time(9), weekday=0)
MONTHLY = Every(Cadence.monthly, time(9), day=1)


@pytest.mark.parametrize(
    ("every", "local", "quiet", "expected"),
    [
        (DAILY, datetime(2026, 3, 10, 8, 59), (21, 8), None),  # the job itself is still to come
        (DAILY, datetime(2026, 3, 10, 9), (21, 8), "2026-03-10"),
        (DAILY, datetime(2026, 3, 10, 20, 59), (21, 8), "2026-03-10"),
        (DAILY, datetime(2026, 3, 10, 21), (21, 8), None),  # quiet: it would go out tomorrow
        (DAILY, datetime(2026, 3, 11, 8, 30), (21, 8), None),  # the next day: not yesterday's
        (DAILY, datetime(2026, 3, 10, 23), (0, 0), "2026-03-10"),  # no quiet hours
        # a 07:00 job inside quiet hours (to 08:00) is caught up at their end
        (Every(Cadence.daily, time(7)), datetime(2026, 3, 10, 7, 30), (21, 8), None),
        (Every(Cadence.daily, time(7)), datetime(2026, 3, 10, 8), (21, 8), "2026-03-10"),
        (WEEKLY, datetime(2026, 11, 23, 8, 59), (21, 8), None),  # Monday, before its time
        (WEEKLY, datetime(2026, 11, 23, 9), (21, 8), "2026-W48"),
        (WEEKLY, datetime(2026, 11, 29, 20), (21, 8), "2026-W48"),  # Sunday: still that week
        (WEEKLY, datetime(2026, 11, 30, 8), (21, 8), None),  # the next Monday, before 09:00
        # Wednesday's 18:30 job on Tuesday: not yet
        (Every(Cadence.weekly, time(18, 30), weekday=2), datetime(2026, 11, 24, 19), (0, 0), None),
        (MONTHLY, datetime(2026, 11, 1, 8, 59), (21, 8), None),
        (MONTHLY, datetime(2026, 11, 5, 10), (21, 8), "2026-11"),
        (MONTHLY, datetime(2026, 11, 30, 22), (21, 8), None),  # quiet
    ],
)
def test_catch_up_period(
    every: Every, local: datetime, quiet: tuple[int, int], expected: str | None
) -> None:
    at = local.replace(tzinfo=SH)
    assert catch_up_period(every, at, time(quiet[0]), time(quiet[1])) == expected


def test_period_and_due_moment() -> None:
    at = datetime(2026, 11, 26, 12, tzinfo=SH)  # a Thursday
    assert period_of(WEEKLY, at) == ("2026-W48", datetime(2026, 11, 23, 9, tzinfo=SH))
    assert period_of(MONTHLY, at) == ("2026-11", datetime(2026, 11, 1, 9, tzinfo=SH))
    assert period_of(DAILY, at) == ("2026-11-26", datetime(2026, 11, 26, 9, tzinfo=SH))


def _more(n: int) -> str:
    return f"… {n} more"


def test_fit_keeps_what_fits_and_counts_the_rest() -> None:
    lines = [("title", False), ("head", False)] + [(f"item {i:03d}", True) for i in range(100)]
    assert fit(lines[:5], _more) == "title\nhead\nitem 000\nitem 001\nitem 002"
    cut = fit(lines, _more, limit=100)
    assert len(cut) <= 100 and cut.startswith("title\nhead\nitem 000\n")
    shown = cut.count("item ")
    assert shown > 5 and cut.endswith(f"… {100 - shown} more")


def test_fit_counts_utf16_units() -> None:
    lines = [("🔺" * 10, False)] + [("🔺" * 10, True) for _ in range(500)]
    cut = fit(lines, _more)
    assert utf16_len(cut) <= TEXT_LIMIT < len(cut) * 2


def _due(i: int, subject: str, status: Status = Status.rectifying) -> Due:
    return Due(f"NH-2026-{i:04d}", "open_burning", 1, subject, sh(1), status, 9 - i % 9)


def test_group_text_is_valid_html_within_the_limit() -> None:
    tr = Catalogues("zh_CN").translator("zh_CN")
    subjects = [
        SubjectOverdue(
            f"<镇&{s}>",
            [
                _due(i, f"<镇&{s}>", Status.pending_check if i == 0 else Status.rectifying)
                for i in range(40)
            ],
            [Liaison(2000 + s, f'"李<{s}>&'), Liaison(3000 + s, "周" * 200)],
        )
        for s in range(30)
    ]
    text = group_text(tr, GroupOverdue(-100, subjects), "2026-03-10")
    plain = formatting.plain_text(text, "HTML")  # the stand-in parses as Telegram does
    assert utf16_len(text) <= TEXT_LIMIT
    assert plain.startswith("⚠️ 超期问题通报（2026-03-10）\n<镇&0>：超期 40 项")
    assert "NH-2026-0000（待核查）" in plain and " 等 30 项" in plain
    assert '<a href="tg://user?id=2000">&quot;李&lt;0&gt;&amp;</a>' in text
    assert plain.endswith("个单位有超期问题，发送 /issues overdue 查看。")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("daily_reminder_time", 450, time(7, 30)),  # YAML 1.1's reading of 7:30
        ("quiet_start", 1260, time(21)),  # of 21:00
        ("quiet_end", "08:00", time(8)),
        ("quiet_end", time(6, 30), time(6, 30)),  # TOML's local time
    ],
)
def test_times_of_day_in_the_rules_file(field: str, value: object, expected: time) -> None:
    assert getattr(Schedules.model_validate({field: value}), field) == expected


@pytest.mark.parametrize("value", [1440, -1, 7.5, True])
def test_numbers_that_are_no_time_of_day_are_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="time of day"):
        Schedules.model_validate({"daily_reminder_time": value})
