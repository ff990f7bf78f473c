"""The ranking as text: the whole table in the caption when it fits, and within Telegram's
limits (1024 for a caption, 4096 for a text, counted in UTF-16 units) with 100 subjects."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.i18n import LOCALES, Catalogues
from bot.rules import Ranking as RankingRules
from bot.services.ranking import Change, ChangeKind, SubjectCounts, rank_subjects
from bot.services.windows import WindowKind, period
from handlers.ranking_views import compose_ranking, formula_text, telegram_len

ZONE = ZoneInfo("Asia/Shanghai")
WINDOW = period(WindowKind.year, date(2026, 11, 23), ZONE)
AS_OF = datetime(2026, 11, 23, 9, 0, tzinfo=ZONE)
CATALOGUES = Catalogues("zh_CN")


def _subjects(n: int, *, name_length: int = 4) -> list[SubjectCounts]:
    stems = "东西南北中前后左右上下新老"
    rows = []
    for i in range(n):
        name = "".join(stems[(i + k) % len(stems)] for k in range(name_length - 1)) + f"镇{i}"
        assigned = 5 + i % 7
        closed = i % (assigned + 1)
        rows.append(
            SubjectCounts(
                i + 1,
                name,
                f"NH-{i:03d}",
                assigned=assigned,
                closed=closed,
                closed_on_time=closed // 2,
                due=closed + i % 3,
                overdue=i % 3,
                longest_overdue_days=float(i % 11),
                rectify_days_total=closed * 3.0,
            )
        )
    return rows


def test_a_small_ranking_is_one_caption() -> None:
    tr = CATALOGUES.translator("zh_CN")
    rows = [
        SubjectCounts(1, "东桥镇", assigned=4, closed=4, closed_on_time=4, due=4),
        SubjectCounts(
            2,
            "西山街道",
            assigned=4,
            closed=2,
            closed_on_time=1,
            due=3,
            overdue=1,
            longest_overdue_days=9.0,
        ),
        SubjectCounts(3, "北湖镇", assigned=0),
    ]
    standings = rank_subjects(rows, RankingRules())
    changes = {1: Change(ChangeKind.up, 2), 2: Change(ChangeKind.new)}
    post = compose_ranking(tr, standings, changes, WINDOW, AS_OF, focus=2)
    assert post.texts == []
    lines = post.caption.splitlines()
    assert lines[0] == "📊 晾晒排名 · 2026年（截至 2026-11-23 09:00）"
    assert "2 个单位参加排名：🟢 0 个 · 🟡 1 个 · 🔴 1 个" in lines[1]
    assert lines[2] == "👉 本群单位 西山街道：第 2/2 名，红码，36.7分"
    # 100 × (0.5 × 2/4 + 0.5 × 1/3) − 5 = 36.7, with its move and the 9 days overdue
    assert "1. 🟡 东桥镇  100.0分  整改100%  按期100%  超期0  ↑2" in lines
    assert "2. 🔴 西山街道  36.7分  整改50%  按期33%  超期1  新  ⚠️超期9天" in lines
    assert "未排名（交办少于 1 件）：北湖镇" in lines
    assert lines[-1] == formula_text(tr, RankingRules())
    assert "{" not in post.caption


@pytest.mark.parametrize(
    ("locale", "listing", "focus"),
    [
        (
            "zh_CN",
            "未排名（交办少于 1 件）：北湖镇🔴（超期 2 件，最久 9 天）、"
            "南岭镇（超期 1 件，最久 3 天）、中洲镇",
            "👉 本群单位 北湖镇：本期交办 0 件，少于 1 件，不参加排名；"
            "但有 2 件超期问题，最久 9 天 红码",
        ),
        (
            "en",
            "Not ranked (fewer than 1 assigned): 北湖镇🔴 (2 overdue, longest 9 days), 南岭镇"
            " (1 overdue, longest 3 days), 中洲镇",
            "👉 This group's 北湖镇: 0 assigned in this period, fewer than 1, so not ranked;"
            " but 2 overdue, the longest 9 days red",
        ),
    ],
)
def test_an_unranked_subject_with_overdue_problems_does_not_read_clean(
    locale: str, listing: str, focus: str
) -> None:
    tr = CATALOGUES.translator(locale)
    rows = [
        SubjectCounts(1, "东桥镇", assigned=4, closed=4, closed_on_time=4, due=4),
        SubjectCounts(2, "北湖镇", overdue=2, longest_overdue_days=9.5),
        SubjectCounts(3, "南岭镇", overdue=1, longest_overdue_days=3.2),
        SubjectCounts(4, "中洲镇"),
    ]
    standings = rank_subjects(rows, RankingRules())
    lines = compose_ranking(tr, standings, {}, WINDOW, AS_OF, focus=2).caption.splitlines()
    assert listing in lines
    assert lines[2] == focus


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name_length", [4, 12])
def test_a_hundred_subjects_stay_within_telegram_limits(locale: str, name_length: int) -> None:
    tr = CATALOGUES.translator(locale)
    rows = _subjects(100, name_length=name_length)
    standings = rank_subjects(rows, RankingRules(min_sample=6))  # some are listed apart
    changes = {r.subject_id: Change(ChangeKind.down, 3) for r in standings.ranked}
    post = compose_ranking(tr, standings, changes, WINDOW, AS_OF, focus=50)
    assert telegram_len(post.caption) <= 1024
    assert post.texts, "100 subjects do not fit in a caption"
    assert all(telegram_len(t) <= 4096 for t in post.texts)
    whole = "\n".join(post.parts)
    # every ranked subject once, in rank order; every unranked one named
    positions = [whole.index(f"{r.rank}. ") for r in standings.ranked]
    assert positions == sorted(positions)
    for row in standings.ranked + standings.apart:
        assert row.name in whole
    assert formula_text(tr, standings.rules) in post.caption
    assert len(post.texts) <= 3  # a readable number of messages, not one per line


def test_telegram_counts_utf16_units() -> None:
    assert telegram_len("东桥镇") == 3
    assert telegram_len("🟢") == 2
    assert telegram_len("a🟢b") == 4
