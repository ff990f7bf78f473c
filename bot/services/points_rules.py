"""The pure rules of volunteer points: the daily cap, reversals, ranks, codes, windows and the
lock-out of a shop that guesses codes. No database, no Telegram; each has a table test."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum

CODE_DIGITS = 6
CODE_SPACE = 10**CODE_DIGITS
# Far above any real purchase; keeps a typo from becoming a huge number.
MAX_CHECKOUT_AMOUNT = 100_000
MAX_CORRECTION = 100_000


def capped_amount(nominal: int, earned_that_day: int, cap: int) -> int:
    """What an earning of ``nominal`` credits when ``earned_that_day`` is already counted
    against the day's ``cap`` (0: no cap). Never negative, never more than the nominal."""
    if nominal <= 0:
        return 0
    if cap <= 0:
        return nominal
    return max(0, min(nominal, cap - earned_that_day))


def reversal_amount(credited: int, balance: int) -> int:
    """Taking back ``credited`` points from a ``balance``: as much as is there, never below
    zero (points already spent at a shop cannot be taken back from the shop)."""
    return -max(0, min(credited, balance))


def competition_ranks(scores: dict[int, int]) -> dict[int, int]:
    """Rank 1 for the highest score; equal scores share a rank and the next rank skips
    (1, 2, 2, 4)."""
    ordered = sorted(scores.values(), reverse=True)
    first_at: dict[int, int] = {}
    for index, score in enumerate(ordered):
        first_at.setdefault(score, index + 1)
    return {key: first_at[score] for key, score in scores.items()}


def receipt_no(redemption_id: int) -> str:
    """A redemption's receipt number, as the shop, the volunteer and the ledger show it."""
    return f"R{redemption_id:06d}"


def format_code(number: int) -> str:
    if not 0 <= number < CODE_SPACE:
        raise ValueError(number)
    return f"{number:0{CODE_DIGITS}d}"


def new_code(randbelow: Callable[[int], int]) -> str:
    """Six digits from ``randbelow`` (``secrets.randbelow`` in the service: unpredictable)."""
    return format_code(randbelow(CODE_SPACE))


class CheckoutInput(StrEnum):
    usage = "usage"  # not two words
    bad_code = "bad_code"  # not six digits
    bad_amount = "bad_amount"  # not a whole number
    not_positive = "not_positive"
    too_much = "too_much"  # above MAX_CHECKOUT_AMOUNT


def _digits(text: str) -> str:
    # Full-width digits (１２３) and stray spaces/dashes, as phones and Chinese keyboards type.
    return "".join(unicodedata.normalize("NFKC", text).split()).replace("-", "")


def parse_code(text: str) -> str | None:
    value = _digits(text)
    return value if len(value) == CODE_DIGITS and value.isascii() and value.isdigit() else None


def parse_amount(text: str, limit: int = MAX_CHECKOUT_AMOUNT) -> int | CheckoutInput:
    value = unicodedata.normalize("NFKC", text).strip().replace("−", "-")
    sign = ""
    if value and value[0] in "+-":
        sign, value = value[0], value[1:]
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        return CheckoutInput.bad_amount
    amount = int(sign + value)
    if amount <= 0:
        return CheckoutInput.not_positive
    if amount > limit:
        return CheckoutInput.too_much
    return amount


def parse_checkout(words: list[str]) -> tuple[str, int] | CheckoutInput:
    """``/checkout CODE AMOUNT``."""
    if len(words) != 2:
        return CheckoutInput.usage
    code = parse_code(words[0])
    if code is None:
        return CheckoutInput.bad_code
    amount = parse_amount(words[1])
    if isinstance(amount, CheckoutInput):
        return amount
    return code, amount


def parse_correction(text: str) -> int | None:
    """An admin's correction: a signed whole number, not zero, within bounds."""
    value = unicodedata.normalize("NFKC", text).strip().replace("−", "-")
    sign = -1 if value.startswith("-") else 1
    value = value.lstrip("+-")
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        return None
    amount = sign * int(value)
    return amount if amount != 0 and abs(amount) <= MAX_CORRECTION else None


def local_day(moment: datetime, zone: tzinfo) -> date:
    return moment.astimezone(zone).date()


def day_start(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0, 0), zone).astimezone(UTC)


def month_window(moment: datetime, zone: tzinfo, back: int = 0) -> tuple[datetime, datetime]:
    """The local calendar month of ``moment`` (or ``back`` months before), as UTC bounds
    [start, end)."""
    local = moment.astimezone(zone)
    year, month = local.year, local.month - back
    while month < 1:
        year, month = year - 1, month + 12
    start = date(year, month, 1)
    end = date(year + (month == 12), month % 12 + 1, 1)
    return day_start(start, zone), day_start(end, zone)


def parse_month(text: str) -> tuple[int, int] | None:
    """``2026-11`` or ``2026/11``."""
    parts = text.strip().replace("/", "-").split("-")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    year, month = int(parts[0]), int(parts[1])
    return (year, month) if 2000 <= year <= 2100 and 1 <= month <= 12 else None


def months_back(now: datetime, zone: tzinfo, year: int, month: int) -> int:
    local = now.astimezone(zone)
    return (local.year - year) * 12 + (local.month - month)


def locked_until(
    failures: Iterable[datetime],
    now: datetime,
    zone: tzinfo,
    *,
    per_hour: int,
    per_day: int,
) -> datetime | None:
    """When a shop that entered wrong codes at ``failures`` may try again, or None if it may
    now. ``per_hour`` wrong codes within the last hour lock it until the oldest of them is an
    hour old; ``per_day`` within the local day lock it until the next local midnight."""
    times = sorted(f for f in failures if f <= now)
    today = day_start(local_day(now, zone), zone)
    if sum(1 for f in times if f >= today) >= per_day:
        return day_start(local_day(now, zone) + timedelta(days=1), zone)
    recent = [f for f in times if f > now - timedelta(hours=1)]
    if len(recent) >= per_hour:
        return recent[-per_hour] + timedelta(hours=1)
    return None
