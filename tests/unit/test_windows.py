"""What /rank's and /export's window words mean: local calendar days, stored as UTC instants."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.services.windows import Window, WindowError, WindowKind, parse_window, period, week_key

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 11, 23)  # a Monday
Y, Q, M, W, R = (
    WindowKind.year,
    WindowKind.quarter,
    WindowKind.month,
    WindowKind.week,
    WindowKind.range,
)


@pytest.mark.parametrize(
    ("text", "kind", "first", "last"),
    [
        ("", Y, date(2026, 1, 1), date(2026, 12, 31)),  # the default from the rules
        (None, Y, date(2026, 1, 1), date(2026, 12, 31)),
        ("year", Y, date(2026, 1, 1), date(2026, 12, 31)),
        ("今年", Y, date(2026, 1, 1), date(2026, 12, 31)),
        ("month", M, date(2026, 11, 1), date(2026, 11, 30)),
        ("本月", M, date(2026, 11, 1), date(2026, 11, 30)),
        ("MONTH", M, date(2026, 11, 1), date(2026, 11, 30)),
        ("quarter", Q, date(2026, 10, 1), date(2026, 12, 31)),
        ("本季度", Q, date(2026, 10, 1), date(2026, 12, 31)),
        ("week", W, date(2026, 11, 23), date(2026, 11, 29)),
        ("本周", W, date(2026, 11, 23), date(2026, 11, 29)),
        ("2025", Y, date(2025, 1, 1), date(2025, 12, 31)),
        ("2026-Q3", Q, date(2026, 7, 1), date(2026, 9, 30)),
        ("2026q1", Q, date(2026, 1, 1), date(2026, 3, 31)),
        ("2026-Q4", Q, date(2026, 10, 1), date(2026, 12, 31)),  # the current quarter, to date
        ("2026-10", M, date(2026, 10, 1), date(2026, 10, 31)),
        ("2026-2", M, date(2026, 2, 1), date(2026, 2, 28)),
        ("2024-02", M, date(2024, 2, 1), date(2024, 2, 29)),  # a leap year
        ("2025-12", M, date(2025, 12, 1), date(2025, 12, 31)),
        ("2026-10-01..2026-10-31", R, date(2026, 10, 1), date(2026, 10, 31)),
        ("2026-10-01 .. 2026-10-31", R, date(2026, 10, 1), date(2026, 10, 31)),
        ("2026-10-01~2026-10-31", R, date(2026, 10, 1), date(2026, 10, 31)),
        ("2026-10-01至2026-10-31", R, date(2026, 10, 1), date(2026, 10, 31)),
        ("2026-10-05", R, date(2026, 10, 5), date(2026, 10, 5)),  # one day
        ("2026-11-01..2026-12-31", R, date(2026, 11, 1), date(2026, 12, 31)),  # ends later
    ],
)
def test_windows(text: str | None, kind: WindowKind, first: date, last: date) -> None:
    window = parse_window(text, today=TODAY, zone=SHANGHAI)
    assert isinstance(window, Window)
    assert (window.kind, window.first, window.last) == (kind, first, last)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("2026-13", WindowError.bad_month),
        ("2026-00", WindowError.bad_month),
        ("2026-Q5", WindowError.bad_quarter),
        ("2026-Q0", WindowError.bad_quarter),
        ("2026-02-30", WindowError.bad_date),
        ("2026-10-01..2026-13-01", WindowError.bad_date),
        ("2026-10-31..2026-10-01", WindowError.reversed),
        ("2027", WindowError.future),
        ("2026-12", WindowError.future),
        ("2026-11-24..2026-11-30", WindowError.future),
        ("1999", WindowError.out_of_range),
        ("2101-01", WindowError.out_of_range),
        # The ends of the calendar: refused, not an OverflowError from the date sums.
        ("9999-12-31", WindowError.out_of_range),
        ("2026-01-01..9999-12-31", WindowError.out_of_range),
        ("0001-01-01", WindowError.out_of_range),
        ("garbage", WindowError.unknown),
        ("2026-10-01..", WindowError.unknown),
        ("last month", WindowError.unknown),
        ("🙂" * 500, WindowError.unknown),
        ("20261", WindowError.unknown),
    ],
)
def test_window_errors(text: str, error: WindowError) -> None:
    assert parse_window(text, today=TODAY, zone=SHANGHAI) == error


def test_the_default_kind_comes_from_the_caller() -> None:
    window = parse_window("", today=TODAY, zone=SHANGHAI, default=WindowKind.month)
    assert isinstance(window, Window) and window.kind is WindowKind.month


def test_local_days_are_stored_as_utc_instants() -> None:
    """A Shanghai day starts at 16:00 UTC the day before; the end is exclusive."""
    window = period(WindowKind.month, date(2026, 10, 9), SHANGHAI)
    assert window.start == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    utc_window = period(WindowKind.year, date(2026, 6, 1), ZoneInfo("UTC"))
    assert utc_window.start == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "key"),
    [
        (date(2026, 11, 23), "2026-W48"),
        (date(2026, 11, 29), "2026-W48"),  # Sunday: the same ISO week
        (date(2026, 1, 1), "2026-W01"),
        (date(2027, 1, 1), "2026-W53"),  # ISO years differ from calendar years at the edges
    ],
)
def test_week_key(day: date, key: str) -> None:
    assert week_key(day) == key
