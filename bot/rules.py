"""The rules file: categories, deadlines, points, ranking weights and schedules.

Defaults ship in `bot/rules.default.yaml`; a deployment's own file (YAML or TOML) replaces any
top-level section it names. Everything here is data the domain reads, never code.
"""

from __future__ import annotations

import tomllib
from datetime import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.settings import ConfigError

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.default.yaml")


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


class Deadlines(_Strict):
    choices_days: list[int] = Field(min_length=1)


class Points(_Strict):
    problem_assigned: int = 2
    problem_closed: int = 3
    activities: dict[str, int]
    daily_cap: int = Field(20, ge=0)


class Ranking(_Strict):
    window: str = "year"
    weight_closure: float = 0.5
    weight_on_time: float = 0.5
    overdue_penalty: float = 5.0
    red_if_overdue_days: int = 7
    min_sample: int = 1


class Schedules(_Strict):
    """Times of day are local, in the configured TIMEZONE."""

    weekly_ranking_day: int = Field(0, ge=0, le=6)  # Monday = 0
    weekly_ranking_time: time = time(9, 0)
    daily_reminder_time: time = time(9, 0)
    leader_summary_day: int = Field(0, ge=0, le=6)
    leader_summary_time: time = time(8, 30)
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


def _read(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError(f"RULES_FILE {path}: expected a mapping at the top level")
    return data


def load_rules(path: Path | None = None) -> Rules:
    """The shipped defaults, with each top-level section of ``path`` replacing the default's."""
    data = _read(DEFAULT_RULES_PATH)
    if path is not None:
        try:
            data.update(_read(path))
        except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"RULES_FILE {path}: not valid YAML/TOML ({exc})") from None
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"RULES_FILE {path or DEFAULT_RULES_PATH}: {where}: {first['msg']}"
        ) from None
