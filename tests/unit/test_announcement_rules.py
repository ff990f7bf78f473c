"""When an admin means an announcement to go, from what they type; and the length limits."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.services.announcements import TimeError, content_problem, parse_send_time

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SH).astimezone(UTC)  # Monday 10:00 in Shanghai


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18:00", datetime(2026, 11, 23, 18, 0, tzinfo=SH)),
        ("18：30", datetime(2026, 11, 23, 18, 30, tzinfo=SH)),  # a full-width colon
        ("明天 09:00", datetime(2026, 11, 24, 9, 0, tzinfo=SH)),
        ("明天9:05", datetime(2026, 11, 24, 9, 5, tzinfo=SH)),
        ("Tomorrow 07:30", datetime(2026, 11, 24, 7, 30, tzinfo=SH)),
        ("12-01 09:00", datetime(2026, 12, 1, 9, 0, tzinfo=SH)),
        ("12月1日 09:00", datetime(2026, 12, 1, 9, 0, tzinfo=SH)),
        ("2027-01-05 08:00", datetime(2027, 1, 5, 8, 0, tzinfo=SH)),
        ("2027/1/5 8:00", datetime(2027, 1, 5, 8, 0, tzinfo=SH)),
        ("10:00", TimeError.past),  # this very minute has begun: past
        ("09:59", TimeError.past),
        ("11-01 09:00", TimeError.past),
        ("25:00", TimeError.bad_date),
        ("09:61", TimeError.bad_date),
        ("2026-02-30 09:00", TimeError.bad_date),
        ("2028-01-01 09:00", TimeError.too_far),
        ("下周二", TimeError.unknown),
        ("", TimeError.unknown),
        ("x" * 5000, TimeError.unknown),
    ],
)
def test_parse_send_time(text: str, expected: datetime | TimeError) -> None:
    assert parse_send_time(text, now=NOW, zone=SH) == expected


def test_limits_count_as_telegram_does() -> None:
    assert content_problem("法" * 4096, photo=False) is None
    assert content_problem("法" * 4097, photo=False) == 4096
    assert content_problem("说" * 1024, photo=True) is None
    assert content_problem("说" * 1025, photo=True) == 1024
    assert content_problem("🌿" * 513, photo=True) == 1024  # an emoji counts two
