"""The chart draws every label with a real glyph (no tofu boxes), from the font the project
installs itself, and stays a picture Telegram accepts and a phone can read."""

import struct
import warnings
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fontTools.ttLib import TTFont
from matplotlib import font_manager

from bot.i18n import LOCALES, Catalogues
from bot.rules import Ranking as RankingRules
from bot.services.charts import (
    chart_labels,
    draw_ranking_chart,
    font_family,
    font_path,
    missing_glyphs,
    render_ranking_chart,
)
from bot.services.org import parse_org_file
from bot.services.ranking import Change, ChangeKind, Standings, SubjectCounts, rank_subjects
from bot.services.windows import WindowKind, period
from handlers.ranking_views import chart_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ZONE = ZoneInfo("Asia/Shanghai")
WINDOW = period(WindowKind.year, date(2026, 11, 23), ZONE)
AS_OF = datetime(2026, 11, 23, 9, 0, tzinfo=ZONE)
# Real town and street names with characters outside the commonest few thousand.
HARD_NAMES = ["甪直镇", "亳州街道", "邛崃镇", "濉溪镇", "盱眙街道", "鄞州街道", "氹仔", "澉浦镇"]


def _names() -> list[str]:
    org = parse_org_file(EXAMPLES / "org.yaml")
    return [a.name for a in org if a.kind == "subject"] + HARD_NAMES


def _standings() -> tuple[Standings, dict[int, Change]]:
    rows = [
        SubjectCounts(
            i + 1,
            name,
            assigned=4,
            closed=i % 5,
            closed_on_time=i % 3,
            due=i % 5 + 1,
            overdue=1,
            longest_overdue_days=float(i),
        )
        for i, name in enumerate(_names())
    ]
    standings = rank_subjects(rows, RankingRules())
    changes = {
        row.subject_id: Change(kind, 2)
        for row, kind in zip(standings.ranked, list(ChangeKind) * 5, strict=False)
    }
    return standings, changes


def _font_cmap() -> set[int]:
    # Read the font file independently of the code under test.
    with TTFont(font_path()) as font:
        return set(font.getBestCmap())


@pytest.mark.parametrize("locale", LOCALES)
def test_every_glyph_of_the_labels_is_in_the_font(locale: str) -> None:
    standings, changes = _standings()
    text = chart_text(Catalogues("zh_CN").translator(locale), WINDOW, AS_OF)
    labels = chart_labels(standings, changes, text)
    assert any("甪直镇" in label for label in labels)
    cmap = _font_cmap()
    missing = {ch for label in labels for ch in label if not ch.isspace() and ord(ch) not in cmap}
    assert missing == set()
    assert all(missing_glyphs(label) == set() for label in labels)


def test_a_glyph_outside_the_font_is_noticed() -> None:
    assert missing_glyphs("东桥镇𓀀") == {"𓀀"}  # an Egyptian hieroglyph: no CJK font has it


def test_matplotlib_draws_with_the_installed_cjk_font() -> None:
    family = font_family()
    found = font_manager.findfont(font_manager.FontProperties(family=family))
    assert Path(found).resolve() == font_path().resolve()
    assert family == "Noto Sans SC"


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


@pytest.mark.parametrize("locale", LOCALES)
def test_the_chart_renders_without_missing_glyph_warnings(locale: str) -> None:
    standings, changes = _standings()
    text = chart_text(Catalogues("zh_CN").translator(locale), WINDOW, AS_OF)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = render_ranking_chart(standings, changes, text, highlight=3)
    assert [str(w.message) for w in caught] == []
    width, height = _png_size(png)
    assert width == 1080  # a phone's width
    assert height > 600


def test_a_hundred_bars_are_a_photo_telegram_accepts() -> None:
    rows = [
        SubjectCounts(i + 1, f"东桥镇{i}", assigned=10, closed=i % 10, closed_on_time=i % 7, due=10)
        for i in range(100)
    ]
    standings = rank_subjects(rows, RankingRules())
    text = chart_text(Catalogues("zh_CN").translator("zh_CN"), WINDOW, AS_OF)
    png = render_ranking_chart(standings, {}, text)
    width, height = _png_size(png)
    # Telegram: width + height at most 10000, sides in a ratio of at most 20, at most 10 MB
    assert width + height <= 10_000 and height / width <= 20 and len(png) < 10 * 2**20
    small = rank_subjects(rows[:3], RankingRules())
    assert _png_size(render_ranking_chart(small, {}, text))[1] < height


def test_nothing_ranked_still_makes_a_picture() -> None:
    text = chart_text(Catalogues("zh_CN").translator("zh_CN"), WINDOW, AS_OF)
    empty = rank_subjects([], RankingRules())
    assert _png_size(render_ranking_chart(empty, {}, text))[0] == 1080


async def test_the_bot_draws_in_a_child_process_the_same_picture() -> None:
    """What the bot sends is drawn in a child process (matplotlib never loads in the bot): the
    same bytes as drawing here."""
    standings, changes = _standings()
    text = chart_text(Catalogues("zh_CN").translator("zh_CN"), WINDOW, AS_OF)
    drawn = await draw_ranking_chart(standings, changes, text, highlight=3)
    assert drawn == render_ranking_chart(standings, changes, text, highlight=3)
