"""Windows of time for the ranking and the ledger: what `/rank month`, `/rank 2026-Q3` or
`/rank 2026-10-01..2026-10-31` mean, as local calendar days and as the UTC instants stored.

Pure: the caller passes today's local date and the zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum

FIRST_YEAR, LAST_YEAR = 2000, 2100


class WindowKind(StrEnum):
    year = "year"
    quarter = "quarter"
    month = "month"
    week = "week"
    range = "range"


# The kinds the rules file may name as the default window.
DEFAULT_KINDS = frozenset({WindowKind.year, WindowKind.quarter, WindowKind.month, WindowKind.week})


class WindowError(StrEnum):
    unknown = "unknown"  # not a window at all
    bad_month = "bad_month"  # 2026-13
    bad_quarter = "bad_quarter"  # 2026-Q5
    bad_date = "bad_date"  # 2026-02-30
    out_of_range = "out_of_range"  # 1999, 2101
    reversed = "reversed"  # 2026-10-31..2026-10-01
    future = "future"  # starts after today


@dataclass(frozen=True)
class Window:
    """Local days ``first``..``last`` (both included) and the UTC instants [start, end)."""

    kind: WindowKind
    first: date
    last: date
    start: datetime
    end: datetime

    @classmethod
    def of(cls, kind: WindowKind, first: date, last: date, zone: tzinfo) -> Window:
        return cls(kind, first, last, _utc(first, zone), _utc(last + timedelta(days=1), zone))

    @property
    def quarter(self) -> int:
        return (self.first.month - 1) // 3 + 1

    @property
    def iso_week(self) -> int:
        return self.first.isocalendar().week

    def contains(self, day: date) -> bool:
        return self.first <= day <= self.last


def _utc(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0, 0), zone).astimezone(UTC)


def _month_last(year: int, month: int) -> date:
    following = date(year + (month == 12), month % 12 + 1, 1)
    return following - timedelta(days=1)


def period(kind: WindowKind, day: date, zone: tzinfo) -> Window:
    """The calendar year, quarter, month or ISO week (Monday first) that holds ``day``."""
    match kind:
        case WindowKind.year:
            return Window.of(kind, date(day.year, 1, 1), date(day.year, 12, 31), zone)
        case WindowKind.quarter:
            first_month = (day.month - 1) // 3 * 3 + 1
            return Window.of(
                kind,
                date(day.year, first_month, 1),
                _month_last(day.year, first_month + 2),
                zone,
            )
        case WindowKind.month:
            return Window.of(kind, day.replace(day=1), _month_last(day.year, day.month), zone)
        case WindowKind.week:
            monday = day - timedelta(days=day.weekday())
            return Window.of(kind, monday, monday + timedelta(days=6), zone)
        case WindowKind.range:
            return Window.of(kind, day, day, zone)


# Words for the current period, in both languages.
_WORDS: dict[str, WindowKind] = {
    "year": WindowKind.year,
    "今年": WindowKind.year,
    "本年": WindowKind.year,
    "年": WindowKind.year,
    "quarter": WindowKind.quarter,
    "本季度": WindowKind.quarter,
    "本季": WindowKind.quarter,
    "季度": WindowKind.quarter,
    "month": WindowKind.month,
    "本月": WindowKind.month,
    "月": WindowKind.month,
    "week": WindowKind.week,
    "本周": WindowKind.week,
    "周": WindowKind.week,
}
_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})-?q(\d+)$")
_DAY = r"(\d{4})-(\d{1,2})-(\d{1,2})"
_RANGE = re.compile(rf"^{_DAY}(?:(?:\.\.|~|～|至|—|–){_DAY})?$")


def _day(year: str, month: str, day: str) -> date | WindowError:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return WindowError.bad_date


def _checked(window: Window, today: date) -> Window | WindowError:
    if not (window.first.year >= FIRST_YEAR and window.last.year <= LAST_YEAR):
        return WindowError.out_of_range
    if window.first > today:
        return WindowError.future
    return window


def parse_window(
    text: str | None, *, today: date, zone: tzinfo, default: WindowKind = WindowKind.year
) -> Window | WindowError:
    """A window from what a person typed after /rank or /export (nothing: the default)."""
    words = (text or "").strip().lower().replace(" ", "")
    if not words:
        return period(default, today, zone)
    if words in _WORDS:
        return period(_WORDS[words], today, zone)
    if match := _YEAR.match(words):
        year = int(match.group(1))
        if not FIRST_YEAR <= year <= LAST_YEAR:
            return WindowError.out_of_range
        return _checked(period(WindowKind.year, date(year, 1, 1), zone), today)
    if match := _MONTH.match(words):
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            return WindowError.bad_month
        if not FIRST_YEAR <= year <= LAST_YEAR:
            return WindowError.out_of_range
        return _checked(period(WindowKind.month, date(year, month, 1), zone), today)
    if match := _QUARTER.match(words):
        year, quarter = int(match.group(1)), int(match.group(2))
        if not 1 <= quarter <= 4:
            return WindowError.bad_quarter
        if not FIRST_YEAR <= year <= LAST_YEAR:
            return WindowError.out_of_range
        return _checked(period(WindowKind.quarter, date(year, quarter * 3 - 2, 1), zone), today)
    if match := _RANGE.match(words):
        first = _day(*match.group(1, 2, 3))
        if isinstance(first, WindowError):
            return first
        last: date | WindowError = _day(*match.group(4, 5, 6)) if match.group(4) else first
        if isinstance(last, WindowError):
            return last
        if last < first:
            return WindowError.reversed
        if not (first.year >= FIRST_YEAR and last.year <= LAST_YEAR):  # before the date sums
            return WindowError.out_of_range
        return _checked(Window.of(WindowKind.range, first, last, zone), today)
    return WindowError.unknown


def week_key(day: date) -> str:
    """The ISO week a local day falls in, e.g. ``2026-W48``: the weekly post's period."""
    iso = day.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"
