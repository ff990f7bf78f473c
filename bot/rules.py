"""The rules file: categories, deadlines, points, ranking weights and schedules.

Defaults ship in `bot/rules.default.yaml`; a deployment's own file (YAML or TOML) replaces any
top-level section it names. Everything here is data the domain reads, never code.
"""

from __future__ import annotations

import re
import tomllib
from datetime import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.settings import ConfigError

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.default.yaml")
RULES_HINT = "fix the file, or unset RULES_FILE to use the shipped defaults"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalizedName(_Strict):
    zh_CN: str
    en: str

    def get(self, locale: str) -> str:
        return self.en if locale == "en" else self.zh_CN


class Category(_Strict):
    key: str = Field(pattern=r"^[a-z0-9_]{1,24}$")
    group: str
    name: LocalizedName
    lead_department: LocalizedName
    default_deadline_days: int = Field(gt=0, le=365)
    # Words in a report's caption that point to this category (besides its names).
    keywords: list[str] = Field(default_factory=list)


class Deadlines(_Strict):
    choices_days: list[int] = Field(min_length=1)


class Points(_Strict):
    problem_assigned: int = Field(2, ge=0)
    problem_closed: int = Field(3, ge=0)
    activities: dict[str, int]
    # Earned per person per local day; 0 means no cap.
    daily_cap: int = Field(20, ge=0)
    code_valid_minutes: int = Field(10, gt=0, le=24 * 60)
    # Unused, unexpired redemption codes one person may hold at once.
    max_live_codes: int = Field(3, ge=1, le=100)
    # A shop account that enters this many wrong codes (unknown, expired, used) within an hour,
    # or within a local day, is refused until the window has passed: 6-digit codes are guessable.
    checkout_failures_per_hour: int = Field(5, ge=1)
    checkout_failures_per_day: int = Field(20, ge=1)
    # The monthly leaderboard: posted to every bound group on this day of the month (for the
    # month before), listing this many volunteers per village.
    leaderboard_day: int = Field(1, ge=1, le=28)
    leaderboard_time: time = time(9, 0)
    leaderboard_top: int = Field(10, ge=1, le=50)

    @field_validator("activities")
    @classmethod
    def _activity_keys(cls, value: dict[str, int]) -> dict[str, int]:
        for key, amount in value.items():
            if not re.fullmatch(r"[a-z0-9_]{1,24}", key):
                raise ValueError(f"activity key {key!r}: use a-z, 0-9 and _ (at most 24)")
            if amount < 0:
                raise ValueError(f"activity {key}: points must not be negative")
        if not value:
            raise ValueError("at least one activity is needed")
        return value


class Ranking(_Strict):
    window: Literal["year", "quarter", "month", "week"] = "year"
    weight_closure: float = 0.5
    weight_on_time: float = 0.5
    overdue_penalty: float = Field(5.0, ge=0)
    red_if_overdue_days: int = Field(7, ge=0)
    min_sample: int = Field(1, ge=0)


class Schedules(_Strict):
    """Times of day are local, in the configured TIMEZONE."""

    weekly_ranking_day: int = Field(0, ge=0, le=6)  # Monday = 0
    weekly_ranking_time: time = time(9, 0)
    daily_reminder_time: time = time(9, 0)
    leader_summary_day: int = Field(0, ge=0, le=6)
    leader_summary_time: time = time(8, 30)
    # Also a summary of the day before, every other morning at leader_summary_time.
    leader_summary_daily: bool = False
    # Nothing scheduled is sent from quiet_start to quiet_end; equal times turn them off.
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    escalate_after_days: int = Field(3, ge=0)
    # The morning reminder lists the problems due within this many hours.
    remind_due_within_hours: int = Field(48, gt=0, le=24 * 31)

    @field_validator(
        "weekly_ranking_time",
        "daily_reminder_time",
        "leader_summary_time",
        "quiet_start",
        "quiet_end",
        mode="before",
    )
    @classmethod
    def _time_of_day(cls, value: object) -> object:
        """YAML 1.1 reads an unquoted 21:00 as the number 1260 (base 60: minutes); pydantic
        would take that as seconds (00:21). A number here can only mean that, or a mistake."""
        if isinstance(value, bool):
            raise ValueError('expected a time of day such as "09:00"')
        if isinstance(value, int | float):
            minutes = int(value)
            if minutes != value or not 0 <= minutes < 24 * 60:
                raise ValueError('expected a time of day such as "09:00"')
            return time(minutes // 60, minutes % 60)
        return value


class DistrictGeo(_Strict):
    """Where the district is: a report located farther than ``radius_km`` is refused."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    radius_km: float = Field(gt=0)


class Invites(_Strict):
    default_expiry_days: int = Field(7, gt=0, le=365)


class Rules(_Strict):
    problem_code_prefix: str = Field("NH", pattern=r"^[A-Z]{1,6}$")
    categories: list[Category] = Field(min_length=1)
    deadlines: Deadlines
    points: Points
    ranking: Ranking
    schedules: Schedules
    invites: Invites
    district_geo: DistrictGeo | None = None

    @field_validator("categories")
    @classmethod
    def _unique_keys(cls, value: list[Category]) -> list[Category]:
        keys = [c.key for c in value]
        if len(keys) != len(set(keys)):
            raise ValueError("category keys must be unique")
        return value

    @model_validator(mode="after")
    def _weights(self) -> Rules:
        if self.ranking.weight_closure < 0 or self.ranking.weight_on_time < 0:
            raise ValueError("ranking weights must not be negative")
        return self

    def category(self, key: str) -> Category | None:
        return next((c for c in self.categories if c.key == key), None)

    def guess_category(self, text: str) -> str | None:
        """The category a caption points to: the one whose name or keyword found in it is
        longest (the most specific), the earlier category on a tie; None if nothing matches."""
        lowered = text.lower()
        best: tuple[int, int] | None = None
        found: str | None = None
        for index, category in enumerate(self.categories):
            words = [category.name.zh_CN, category.name.en, *category.keywords]
            length = max((len(w) for w in words if w and w.lower() in lowered), default=0)
            if length and (best is None or (-length, index) < best):
                best, found = (-length, index), category.key
        return found


def _read(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError(
            f"RULES_FILE {path}: expected sections (name: value) at the top level; {RULES_HINT}"
        )
    return data


def load_rules(path: Path | None = None) -> Rules:
    """The shipped defaults, with each top-level section of ``path`` replacing the default's."""
    data = _read(DEFAULT_RULES_PATH)
    if path is not None:
        try:
            data.update(_read(path))
        except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            detail = " ".join(str(exc).split())  # the parsers' messages span lines
            raise ConfigError(
                f"RULES_FILE {path}: not valid YAML/TOML ({detail}); {RULES_HINT}"
            ) from None
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_rules_error(path or DEFAULT_RULES_PATH, exc)) from None


def describe_rules_error(path: Path, exc: ValidationError) -> str:
    """One line: the file, where in it (when pydantic knows), what is wrong, and the fix."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = " ".join(str(first["msg"]).removeprefix("Value error, ").split())
    return f"RULES_FILE {path}: {where + ': ' if where else ''}{message}; {RULES_HINT}"
