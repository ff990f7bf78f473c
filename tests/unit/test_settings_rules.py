from pathlib import Path

import pytest

from bot.rules import load_rules
from bot.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "BOT_TOKEN",
        "BOT_API_BASE_URL",
        "DATABASE_URL",
        "TIMEZONE",
        "DEFAULT_LOCALE",
        "ADMIN_IDS",
        "RULES_FILE",
        "RATE_LIMIT_SCALE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout


def test_defaults() -> None:
    s = load_settings()
    assert s.database_url == "sqlite+aiosqlite:///data/greengrid.db"
    assert s.timezone == "Asia/Shanghai" and s.default_locale == "zh_CN"
    assert s.admin_ids == [] and s.api_urls is None


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://127.0.0.1:8081", ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot")),
        (
            "http://127.0.0.1:8081/bot",
            ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot"),
        ),
        (
            "https://api.example.org/",
            ("https://api.example.org/bot", "https://api.example.org/file/bot"),
        ),
    ],
)
def test_api_base_url_gives_file_url_too(
    monkeypatch: pytest.MonkeyPatch, base: str, expected: tuple[str, str]
) -> None:
    monkeypatch.setenv("BOT_API_BASE_URL", base)
    assert load_settings().api_urls == expected


def test_env_file_and_lists(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ADMIN_IDS=1001, 1002\nDATABASE_URL=postgresql://u@h/db\n")
    s = load_settings()
    assert s.admin_ids == [1001, 1002]
    assert s.database_url == "postgresql+asyncpg://u@h/db"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("TIMEZONE", "Mars/Olympus", "TIMEZONE: unknown time zone"),
        ("DEFAULT_LOCALE", "fr", "DEFAULT_LOCALE"),
        ("ADMIN_IDS", "12,abc", "ADMIN_IDS"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: unsupported database URL"),
        ("BOT_API_BASE_URL", "ftp://x", "BOT_API_BASE_URL: must start with http"),
        ("RULES_FILE", "/nonexistent.yaml", "RULES_FILE: no such file"),
        ("RATE_LIMIT_SCALE", "0", "RATE_LIMIT_SCALE"),
    ],
)
def test_wrong_setting_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(says) and "\n" not in message
    assert "set " in message  # says how to fix it


def test_missing_token_says_how() -> None:
    with pytest.raises(ConfigError, match="BOT_TOKEN is not set"):
        load_settings().token()


def test_shipped_rules() -> None:
    rules = load_rules()
    assert {c.default_deadline_days for c in rules.categories} <= {3, 7, 15, 30}
    assert rules.deadlines.choices_days == [3, 7, 15, 30]
    assert rules.points.activities == {"publicity": 2, "persuasion": 3, "patrol": 1, "cleanup": 5}
    assert rules.ranking.weight_closure == 0.5 and rules.ranking.min_sample == 1
    assert rules.category("open_burning") is not None


def test_rules_file_replaces_sections(tmp_path: Path) -> None:
    yaml_file = tmp_path / "rules.yaml"
    yaml_file.write_text("ranking: {weight_closure: 0.7, weight_on_time: 0.3}\n")
    rules = load_rules(yaml_file)
    assert rules.ranking.weight_closure == 0.7 and rules.ranking.red_if_overdue_days == 7
    toml_file = tmp_path / "rules.toml"
    toml_file.write_text("[invites]\ndefault_expiry_days = 3\n")
    assert load_rules(toml_file).invites.default_expiry_days == 3


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("ranking: {weight_closure: -1}\n", "ranking"),
        ("invites: {default_expiry_days: 0}\n", "invites.default_expiry_days"),
        ("typo_section: 1\n", "typo_section"),
        ("ranking: [unclosed\n", "not valid YAML"),
        ("- just a list\n", "top level"),
    ],
)
def test_bad_rules_file(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=says):
        load_rules(path)


def test_rules_error_is_one_clean_line_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("ranking: {weight_closure: -1}\n")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert str(info.value) == (
        f"RULES_FILE {path}: ranking weights must not be negative; "
        "fix the file, or unset RULES_FILE to use the shipped defaults"
    )
    path.write_text("ranking: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert "\n" not in str(info.value) and str(info.value).endswith("shipped defaults")


def test_no_district_location_by_default(tmp_path: Path) -> None:
    """A deployment elsewhere must not inherit the example district's location: the shipped
    rules have none, a file of one's own without the section has none, and the example
    district's file sets it."""
    assert load_rules().district_geo is None
    own = tmp_path / "rules.yaml"
    own.write_text("invites: {default_expiry_days: 3}\n")
    assert load_rules(own).district_geo is None
    own.write_text("district_geo: null\n")
    assert load_rules(own).district_geo is None
    example = load_rules(Path(__file__).resolve().parents[2] / "examples" / "rules.yaml")
    assert example.district_geo is not None and example.district_geo.radius_km == 40


@pytest.mark.parametrize(
    ("caption", "category"),
    [
        ("河边有人露天焚烧垃圾", "open_burning"),  # the category's own name
        ("这里有人烧垃圾", "open_burning"),  # 烧垃圾 (3) is more specific than 垃圾 (2)
        ("村口乱倒垃圾", "household_waste"),
        ("村口水沟有黑臭污水", "rural_sewage"),
        ("工地扬尘很大", "construction_dust"),
        ("晚上KTV噪音扰民", "noise"),
        ("养猪场粪污直排河道", "manure"),
        ("Someone is BURNING trash", "open_burning"),  # English, any case
        ("随便说说", None),
        ("", None),
    ],
)
def test_a_caption_points_to_a_category(caption: str, category: str | None) -> None:
    assert load_rules().guess_category(caption) == category


def test_keywords_come_from_the_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "categories:\n"
        "  - {key: other, group: other, default_deadline_days: 5, keywords: [怪味],\n"
        "     name: {zh_CN: 其他, en: Other}, lead_department: {zh_CN: 环保办, en: Office}}\n",
        encoding="utf-8",
    )
    assert load_rules(rules).guess_category("一股怪味") == "other"
    assert load_rules(rules).guess_category("烧垃圾") is None  # the defaults are replaced
