"""The pure rules of points, as tables."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.rules import load_rules
from bot.services.points_rules import (
    CheckoutInput,
    capped_amount,
    competition_ranks,
    format_code,
    locked_until,
    month_window,
    months_back,
    new_code,
    parse_checkout,
    parse_correction,
    parse_month,
    reversal_amount,
)
from bot.settings import ConfigError

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("nominal", "earned", "cap", "credited"),
    [
        (2, 0, 20, 2),
        (5, 15, 20, 5),  # exactly to the cap
        (5, 17, 20, 3),  # cut to what is left
        (5, 20, 20, 0),  # nothing left
        (5, 25, 20, 0),  # already over (the cap was lowered): nothing, never negative
        (5, 100, 0, 5),  # 0: no cap
        (0, 0, 20, 0),
        (-3, 0, 20, 0),  # a negative rule value never debits
    ],
)
def test_capped_amount(nominal: int, earned: int, cap: int, credited: int) -> None:
    assert capped_amount(nominal, earned, cap) == credited


@pytest.mark.parametrize(
    ("credited", "balance", "amount"),
    [(2, 10, -2), (2, 1, -1), (2, 0, 0), (0, 10, 0), (5, 5, -5)],
)
def test_reversal_never_goes_below_zero(credited: int, balance: int, amount: int) -> None:
    assert reversal_amount(credited, balance) == amount
    assert balance + reversal_amount(credited, balance) >= 0


@pytest.mark.parametrize(
    ("scores", "ranks"),
    [
        ({}, {}),
        ({1: 5}, {1: 1}),
        ({1: 5, 2: 9, 3: 1}, {2: 1, 1: 2, 3: 3}),
        ({1: 5, 2: 5, 3: 1, 4: 7}, {4: 1, 1: 2, 2: 2, 3: 4}),  # ties share, the next skips
        ({1: 0, 2: 0}, {1: 1, 2: 1}),
    ],
)
def test_competition_ranks(scores: dict[int, int], ranks: dict[int, int]) -> None:
    assert competition_ranks(scores) == ranks


def test_codes_are_six_digits() -> None:
    assert format_code(0) == "000000"
    assert format_code(999_999) == "999999"
    assert new_code(lambda n: n - 1) == "999999"
    with pytest.raises(ValueError):
        format_code(1_000_000)


@pytest.mark.parametrize(
    ("words", "parsed"),
    [
        (["123456", "30"], ("123456", 30)),
        (["012345", "1"], ("012345", 1)),
        (["１２３４５６", "３０"], ("123456", 30)),  # full-width, as Chinese keyboards type
        (["123-456", "+5"], ("123456", 5)),
        (["123456"], CheckoutInput.usage),
        (["123456", "3", "4"], CheckoutInput.usage),
        ([], CheckoutInput.usage),
        (["12345", "3"], CheckoutInput.bad_code),
        (["1234567", "3"], CheckoutInput.bad_code),
        (["abcdef", "3"], CheckoutInput.bad_code),
        (["١٢٣٤٥٦", "3"], CheckoutInput.bad_code),  # other scripts' digits are not codes
        (["123456", "abc"], CheckoutInput.bad_amount),
        (["123456", "2.5"], CheckoutInput.bad_amount),
        (["123456", "1e3"], CheckoutInput.bad_amount),
        (["123456", ""], CheckoutInput.bad_amount),
        (["123456", "0"], CheckoutInput.not_positive),
        (["123456", "-3"], CheckoutInput.not_positive),
        (["123456", "−3"], CheckoutInput.not_positive),
        (["123456", "100001"], CheckoutInput.too_much),
        (["123456", "9" * 40], CheckoutInput.bad_amount),
    ],
)
def test_parse_checkout(words: list[str], parsed: tuple[str, int] | CheckoutInput) -> None:
    assert parse_checkout(words) == parsed


@pytest.mark.parametrize(
    ("text", "amount"),
    [("5", 5), ("+5", 5), ("-5", -5), ("−5", -5), ("０", None), ("0", None), ("x", None)],
)
def test_parse_correction(text: str, amount: int | None) -> None:
    assert parse_correction(text) == amount


def test_month_window_in_the_local_zone() -> None:
    # 2026-11-30 17:00 UTC is already 1 December in Shanghai.
    start, end = month_window(datetime(2026, 11, 30, 17, 0, tzinfo=UTC), SHANGHAI)
    assert start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    start, end = month_window(datetime(2026, 1, 15, tzinfo=UTC), SHANGHAI, back=1)
    assert (start.astimezone(SHANGHAI).date(), end.astimezone(SHANGHAI).date()) == (
        date(2025, 12, 1),
        date(2026, 1, 1),
    )


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("2026-11", (2026, 11)), ("2026/1", (2026, 1)), ("2026-13", None), ("nov", None)],
)
def test_parse_month(text: str, parsed: tuple[int, int] | None) -> None:
    assert parse_month(text) == parsed


def test_months_back() -> None:
    now = datetime(2026, 3, 5, tzinfo=UTC)
    assert months_back(now, SHANGHAI, 2026, 3) == 0
    assert months_back(now, SHANGHAI, 2025, 12) == 3


NOW = datetime(2026, 11, 10, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def _ago(*minutes: int) -> list[datetime]:
    return [NOW - timedelta(minutes=m) for m in minutes]


@pytest.mark.parametrize(
    ("failures", "until"),
    [
        ([], None),
        (_ago(1, 2, 3, 4), None),  # four in the hour: not yet
        (_ago(1, 2, 3, 4, 50), NOW + timedelta(minutes=10)),  # the fifth: until 50 min ago + 1 h
        (_ago(1, 2, 3, 4, 70), None),  # one of them is older than an hour
        (_ago(*range(1, 7)), NOW - timedelta(minutes=5) + timedelta(hours=1)),
        # 20 spread over the morning (4 an hour): the day's limit, until local midnight
        (_ago(*range(10, 700, 35)), datetime(2026, 11, 10, 16, 0, tzinfo=UTC)),
        # yesterday's do not count towards today's
        (_ago(*range(730, 1400, 30)), None),
    ],
)
def test_lock_out(failures: list[datetime], until: datetime | None) -> None:
    assert locked_until(failures, NOW, SHANGHAI, per_hour=5, per_day=20) == until


def test_a_points_section_of_ones_own_gets_the_new_defaults(tmp_path: Path) -> None:
    own = tmp_path / "rules.yaml"
    own.write_text("points: {activities: {patrol: 4}, daily_cap: 0}\n", encoding="utf-8")
    points = load_rules(own).points
    assert points.activities == {"patrol": 4} and points.daily_cap == 0
    assert (points.code_valid_minutes, points.max_live_codes) == (10, 3)
    assert (points.checkout_failures_per_hour, points.checkout_failures_per_day) == (5, 20)
    assert (points.problem_assigned, points.problem_closed) == (2, 3)


@pytest.mark.parametrize(
    "section",
    [
        "{activities: {}}",
        "{activities: {Patrol!: 1}}",
        "{activities: {patrol: -1}}",
        "{activities: {patrol: 1}, problem_closed: -3}",
        "{activities: {patrol: 1}, leaderboard_day: 31}",
        "{activities: {patrol: 1}, code_valid_minutes: 0}",
    ],
)
def test_bad_points_sections_are_refused(tmp_path: Path, section: str) -> None:
    own = tmp_path / "rules.yaml"
    own.write_text(f"points: {section}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="points"):
        load_rules(own)
